"""Rates, policies, their header values, key functions and the public names."""

from __future__ import annotations

import pytest

from lms_shared.http import api_key_key, client_ip_key, key_chain, principal_key
from lms_shared.ratelimit import MemoryStorage, Quota, Rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/minute", Rate(100, 60)),
        ("5/10s", Rate(5, 10)),
        ("1000 per day", Rate(1000, 86400)),
        ("10/second", Rate(10, 1)),
        ("3 / 2 hours", Rate(3, 7200)),
        (" 7/MIN ", Rate(7, 60)),
    ],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize(
    "text", ["", "lots", "10", "10/fortnight", "0/minute", "-1/minute", "5/0s"]
)
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate.parse(text)


def test_policy_header_is_a_structured_field() -> None:
    policy = Quota("login", Rate(5, 60))
    assert policy.policy_header == b'"login";q=5;w=60'
    assert policy.burst == 5
    assert policy.interval_us == 12_000_000


@pytest.mark.parametrize("name", ["", 'a"b', "a b", "x" * 65, "ünï"])
def test_policy_names_are_safe_header_strings(name: str) -> None:
    with pytest.raises(ValueError, match="policy name"):
        Quota(name, Rate(1, 1))


def test_decision_headers() -> None:
    policy = Quota("p", Rate(2, 10))
    refused = policy.decide(False, 20_000_000, 10_000_000, 1)
    assert refused.headers() == [
        (b"ratelimit", b'"p";r=0;t=5'),
        (b"ratelimit-policy", b'"p";q=2;w=10'),
        (b"retry-after", b"5"),
    ]


def scope(client: str = "192.0.2.10", **headers: str) -> dict[str, object]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "client": (client, 5000), "headers": raw, "state": {}}


def test_principal_key_reads_the_request_state() -> None:
    class Who:
        subject = "u-42"
        kind = "user"

    assert principal_key(scope()) is None
    assert principal_key({**scope(), "state": {"principal": Who()}}) == "principal:user:u-42"
    assert principal_key({**scope(), "state": {"principal": "svc"}}) == "principal:svc"


def test_api_key_key_never_contains_the_key() -> None:
    key = api_key_key(scope(x_api_key="lms_secret_value_123"))
    assert key is not None
    assert key.startswith("apikey:")
    assert "secret" not in key
    assert api_key_key(scope(authorization="ApiKey lms_secret_value_123")) == key
    assert api_key_key(scope(authorization="Bearer abc")) is None


def test_ipv6_clients_are_grouped_by_their_64() -> None:
    key = client_ip_key()
    assert (
        key(scope("2001:db8:1:2::1"))
        == key(scope("2001:db8:1:2:ffff::9"))
        == "ip:2001:db8:1:2::/64"
    )
    assert key(scope("::ffff:198.51.100.4")) == "ip:198.51.100.4"
    assert key({"type": "http", "headers": [], "client": None}) is None


def test_key_chain_falls_through_in_order() -> None:
    chain = key_chain(["principal", "api_key", "ip"])
    assert chain(scope(x_api_key="k")).startswith("apikey:")
    assert chain(scope()) == "ip:192.0.2.10"
    assert chain({"type": "http", "headers": [], "client": None}) == "ip:unknown"
    with pytest.raises(ValueError, match="unknown rate-limit key"):
        key_chain(["cookie"])


async def test_memory_storage_is_bounded() -> None:
    storage = MemoryStorage(max_keys=10)
    for i in range(50):
        await storage.acquire(f"k{i}", 0, 1_000_000, 5_000_000, 1)
    assert len(storage) <= 10
