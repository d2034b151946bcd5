"""Backends chosen by URL, the static list's syntax, and instance validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lms_shared.discovery import (
    DiscoveryConfigError,
    Instance,
    InvalidRegistryData,
    LocalRegistry,
    StaticRegistry,
    registry_from_url,
)
from lms_shared.discovery._dns import KubernetesDnsRegistry
from lms_shared.discovery._etcd import EtcdRegistry
from lms_shared.discovery._instance import decode_json, instance_from_record
from lms_shared.errors import ConfigurationError
from lms_shared.testing import ManualClock


def make(url: str | None, tmp_path: Path | None = None) -> object:
    return registry_from_url(url, clock=ManualClock(), state_dir=tmp_path or Path("/state"))


def test_unset_means_the_local_file_under_the_state_folder(tmp_path: Path) -> None:
    registry = make(None, tmp_path)
    assert isinstance(registry, LocalRegistry)
    assert registry.path == tmp_path / "discovery.sqlite3"
    assert not registry.path.exists()  # nothing is created before start()
    other = make("local:///var/lib/lms/registry.db?poll=0.5")
    assert isinstance(other, LocalRegistry)
    assert other.path == Path("/var/lib/lms/registry.db")
    assert other.poll_interval == 0.5


def test_an_unknown_scheme_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(DiscoveryConfigError) as caught:
        make("consul://127.0.0.1:8500")
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.problems[0][0] == "LMS_DISCOVERY_URL"
    assert "consul" in str(caught.value)
    assert "etcd://" in str(caught.value)
    with pytest.raises(DiscoveryConfigError, match="unknown registry"):
        make("127.0.0.1:2379")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("etcd://127.0.0.1:2379?prefx=/x", "unknown option"),
        ("etcd://127.0.0.1", "host:port"),
        ("etcd://", "at least one"),
        ("etcd://user:pw@127.0.0.1:2379", "credentials"),
        ("etcd://127.0.0.1:2379?prefix=relative", "absolute"),
        ("etcd://127.0.0.1:2379?timeout=soon", "seconds"),
        ("etcd://127.0.0.1:2379?timeout=0", "seconds"),
        ("local://relative/path", "absolute"),
        ("k8s://Bad_Namespace", "DNS label"),
        ("dns://127.0.0.1:99999/lms", "resolver"),
        ("k8s://lms?port=0", "port="),
        ("k8s://lms?port_name=Not_A_Name", "port name"),
        ("static://courses", "service=host:port"),
        ("static://courses=127.0.0.1", "host:port"),
        ("static://courses=127.0.0.1:http", "port must be a number"),
        ("static://courses=127.0.0.1:70000", "1-65535"),
        ("static://Courses=127.0.0.1:80", "DNS label"),
        ("static://courses=127.0.0.1:80,127.0.0.1:80", "twice"),
        ('{"courses": "127.0.0.1:80"}', "list of instances"),
        ('{"courses": [{"address": "127.0.0.1"}]}', "'port'"),
        ('{"courses": [{"address": "127.0.0.1", "port": 1, "weight": 3}]}', "unknown"),
        ('{"courses": [1]}', "'host:port' or an object"),
        ('{"courses": [', "not valid JSON"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(DiscoveryConfigError, match=message):
        make(url)


def test_oversized_and_deeply_nested_static_lists_are_refused() -> None:
    with pytest.raises(DiscoveryConfigError, match="longer than"):
        make("static://courses=" + ",".join(f"10.0.{i // 250}.{i % 250}:80" for i in range(9000)))
    with pytest.raises(DiscoveryConfigError, match="not valid JSON"):
        make('{"courses": ' + "[" * 10_000 + "]" * 10_000 + "}")


async def test_the_inline_static_syntax() -> None:
    registry = make("static://identity=127.0.0.1:8001, 127.0.0.1:8002;courses=[::1]:8000;")
    assert isinstance(registry, StaticRegistry)
    assert registry.read_only
    [v6] = await registry.lookup("courses")
    assert (v6.address, v6.port, v6.id, v6.endpoint) == ("::1", 8000, "::1:8000", "[::1]:8000")
    assert [i.endpoint for i in await registry.lookup("identity")] == [
        "127.0.0.1:8001",
        "127.0.0.1:8002",
    ]
    assert await registry.list_services() == ["courses", "identity"]


async def test_the_json_static_syntax_carries_versions_zones_and_metadata() -> None:
    registry = make(
        '{"grading": ["127.0.0.1:9000", {"address": "10.0.0.7", "port": 9001, "id": "canary",'
        ' "version": "2.0.0", "zone": "eu-2", "metadata": {"weight": "5"}}], "empty": []}'
    )
    grading = await registry.lookup("grading")  # type: ignore[attr-defined]
    assert [(i.id, i.version, i.zone) for i in grading] == [
        ("127.0.0.1:9000", None, None),
        ("canary", "2.0.0", "eu-2"),
    ]
    assert dict(grading[1].metadata) == {"weight": "5"}
    assert await registry.list_services() == ["grading"]  # type: ignore[attr-defined]


def test_etcd_and_dns_urls() -> None:
    etcd = make("etcd://127.0.0.1:2379,127.0.0.2:2379?prefix=/lms/prod/&timeout=2")
    assert isinstance(etcd, EtcdRegistry)
    assert etcd.endpoints == ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
    assert etcd.prefix == "/lms/prod"
    assert not etcd.read_only
    tls = make("etcds://etcd.internal:2379")
    assert isinstance(tls, EtcdRegistry)
    assert tls.endpoints == ["https://etcd.internal:2379"]
    k8s = make("k8s://lms?domain=cluster.example&port_name=grpc&port=9090")
    assert isinstance(k8s, KubernetesDnsRegistry)
    assert (k8s.namespace, k8s.domain, k8s.port_name, k8s.default_port, k8s.nameserver) == (
        "lms",
        "cluster.example",
        "grpc",
        9090,
        None,
    )
    assert k8s.service_name("courses") == "courses.lms.svc.cluster.example"
    dns = make("dns://127.0.0.1:5353/")
    assert isinstance(dns, KubernetesDnsRegistry)
    assert (dns.nameserver, dns.nameserver_port, dns.namespace) == ("127.0.0.1", 5353, "default")


def test_instances_check_their_fields() -> None:
    good = Instance("courses", "c-1", "10.0.0.1", 80, version="1.0.0", zone="eu-1")
    assert good.key == "courses/c-1"
    assert good.base_url() == "http://10.0.0.1:80"
    assert hash(good) == hash(Instance("courses", "c-1", "10.0.0.1", 80, "1.0.0", "eu-1"))
    bad_fields: list[dict[str, object]] = [
        {"service": "Courses"},
        {"id": "a/b"},
        {"id": ""},
        {"address": "10.0.0.1 evil"},
        {"port": 0},
        {"port": True},
        {"port": "80"},
        {"version": "1 0"},
        {"zone": ""},
        {"metadata": {"k": 1}},
        {"metadata": {f"k{i}": "v" for i in range(65)}},
    ]
    for change in bad_fields:
        fields: dict[str, object] = {
            "service": "courses",
            "id": "c-1",
            "address": "10.0.0.1",
            "port": 80,
        }
        fields.update(change)
        with pytest.raises(ValueError):  # noqa: PT011 (the message varies per field)
            Instance(**fields)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        good.metadata["x"] = "y"  # type: ignore[index]


def test_records_are_decoded_with_bounds_and_checks() -> None:
    with pytest.raises(InvalidRegistryData, match="larger than"):
        decode_json(b"{}" + b" " * 70_000, what="record")
    with pytest.raises(InvalidRegistryData, match="not valid JSON"):
        decode_json(b"[" * 10_000 + b"]" * 10_000, what="record")
    with pytest.raises(InvalidRegistryData, match="not a JSON object"):
        instance_from_record([1])
    with pytest.raises(InvalidRegistryData, match="lacks the field 'port'"):
        instance_from_record({"service": "a", "id": "b", "address": "c"})
    with pytest.raises(InvalidRegistryData, match="unknown fields"):
        instance_from_record({"service": "a", "id": "b", "address": "c", "port": 1, "x": 1})
    with pytest.raises(InvalidRegistryData, match="malformed"):
        instance_from_record({"service": "a", "id": "b", "address": "c", "port": 1, "healthy": 1})
    with pytest.raises(InvalidRegistryData, match="malformed"):
        instance_from_record(
            {"service": "a", "id": "b", "address": "c", "port": 1, "registered_at": "yesterday"}
        )
