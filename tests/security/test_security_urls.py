"""The SSRF guard against a corpus of internal targets in every spelling."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from pydantic import BaseModel, ValidationError

from lms_shared.security import PublicUrl, UnsafeURLError, UrlGuard
from lms_shared.security.urls import SystemResolver, parse_ipv4_host


class FakeDNS:
    """A resolver answering from a table (the injectable seam), counting calls."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        try:
            return self.table[host]
        except KeyError:
            raise OSError(f"{host} does not resolve") from None


SSRF_CORPUS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8001/admin",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://017700000001/",  # octal
    "http://0177.0.0.1/",  # octal first octet
    "http://0x7f.0.0.1/",  # hex octet
    "http://0x7f000001/",  # hex whole
    "http://127.1/",  # short form
    "http://127.0.1/",
    "http://0/",  # 0.0.0.0
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",  # IPv6-mapped IPv4
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fe80::1]/",  # link-local
    "http://[fd00:ec2::254]/",  # AWS IMDS over IPv6 (unique local)
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://198.18.0.1/",  # benchmarking
    "http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/",  # full-width digits, dots
    "http://evil.example@127.0.0.1/",  # user info
    "http://127.0.0.1\\@evil.example/",  # backslash parser confusion
    "http://127.0.0.1 .evil.example/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://example.org/",
    "javascript:alert(1)",
    "//127.0.0.1/",
    "http:///path",
    "http://[::1%25eth0]/",
    "http://256.0.0.1/",  # ends in a number but invalid
    "http://1.2.3.4.5/",
    "http://0x100000000/",
    "http://example.org:99999/",
]


@pytest.mark.parametrize("url", SSRF_CORPUS)
async def test_ssrf_corpus_is_refused(url: str) -> None:
    guard = UrlGuard(resolver=FakeDNS({}))
    with pytest.raises(UnsafeURLError):
        guard.check_syntax(url)
    with pytest.raises(UnsafeURLError):
        await guard.check(url)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0300.0250.0.1", "192.168.0.1"),
        ("3232235521", "192.168.0.1"),
        ("0xa9.254.0xa9.0376", "169.254.169.254"),
        ("8.8.8.8.", "8.8.8.8"),
    ],
)
def test_numeric_hosts_are_read_like_browsers_do(host: str, address: str) -> None:
    assert str(parse_ipv4_host(host)) == address


def test_names_are_not_numbers() -> None:
    assert parse_ipv4_host("example.org") is None
    assert parse_ipv4_host("1.example") is None
    assert parse_ipv4_host("0x7f.example") is None


@pytest.mark.parametrize(
    "name",
    ["internal.example", "rebind.example", "mixed.example", "mapped.example", "metadata.example"],
)
async def test_names_resolving_to_internal_addresses_are_refused(name: str) -> None:
    dns = FakeDNS(
        {
            "internal.example": ["127.0.0.1"],
            "rebind.example": ["::1"],
            "mixed.example": ["93.184.215.14", "10.1.2.3"],  # one bad address is enough
            "mapped.example": ["::ffff:127.0.0.1"],
            "metadata.example": ["169.254.169.254"],
        }
    )
    guard = UrlGuard(resolver=dns)
    guard.check_syntax(f"https://{name}/hook")  # the name alone looks fine
    with pytest.raises(UnsafeURLError, match="resolves to"):
        await guard.check(f"https://{name}/hook")
    assert dns.calls == [name]


class CnameToLocalhost:
    """The real resolver, as if the asked name were a CNAME of ``localhost``."""

    async def resolve(self, host: str, port: int) -> list[str]:
        return await SystemResolver().resolve("localhost", port)


async def test_real_resolver_answers_are_checked() -> None:
    with pytest.raises(UnsafeURLError, match=r"refused address: 127\.0\.0\.1 is a loopback"):
        await UrlGuard(resolver=CnameToLocalhost()).check("https://innocent.example/")
    name = socket.gethostname()  # /etc/hosts maps it to a loopback or private address here
    try:
        addresses = {ipaddress.ip_address(i[4][0]) for i in socket.getaddrinfo(name, 80)}
    except OSError:
        addresses = set()
    if addresses and not any(a.is_global for a in addresses):
        with pytest.raises(UnsafeURLError, match="resolves to"):
            await UrlGuard(resolver=SystemResolver()).check(f"http://{name}/")


async def test_public_targets_pass_and_report_their_addresses() -> None:
    guard = UrlGuard(resolver=FakeDNS({"hooks.example.com": ["93.184.215.14", "2606:2800::1"]}))
    checked = await guard.check("https://hooks.example.com/lms?x=1")
    assert (checked.scheme, checked.host, checked.port) == ("https", "hooks.example.com", 443)
    assert checked.addresses == ("93.184.215.14", "2606:2800::1")
    literal = await guard.check("http://8.8.8.8:8080/")
    assert literal.addresses == ("8.8.8.8",)


async def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(UnsafeURLError, match="does not resolve"):
        await UrlGuard(resolver=FakeDNS({})).check("https://nowhere.example/")


async def test_explicit_allowances() -> None:
    dns = FakeDNS({"grading.internal": ["10.0.0.7"]})
    assert (await UrlGuard(allow_private=True, resolver=dns).check("http://10.0.0.7/")).host
    with pytest.raises(UnsafeURLError, match="loopback"):
        UrlGuard(allow_private=True).check_syntax("http://127.0.0.1/")
    assert UrlGuard(allowed_networks=["127.0.0.0/8"]).check_syntax("http://127.0.0.1/")
    checked = await UrlGuard(allowed_hosts=["grading.internal"], resolver=dns).check(
        "http://grading.internal/v1/x"
    )
    assert checked.addresses == ("10.0.0.7",)
    with pytest.raises(UnsafeURLError, match="scheme"):
        UrlGuard(schemes={"https"}).check_syntax("http://example.org/")
    with pytest.raises(UnsafeURLError, match="port"):
        UrlGuard(ports={443}).check_syntax("https://example.org:8443/")


class Hook(BaseModel):
    url: PublicUrl


def test_public_url_type() -> None:
    assert Hook(url="https://hooks.example.com/x").url == "https://hooks.example.com/x"
    for bad in ("http://2130706433/", "http://[::ffff:10.0.0.1]/", "ftp://example.org/"):
        with pytest.raises(ValidationError):
            Hook(url=bad)
