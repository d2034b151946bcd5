"""URL validation with an SSRF guard, for URLs the service will fetch.

A user-supplied URL (a webhook target, an avatar to import, an LTI
launch) must not make the service call itself, the cloud metadata
endpoint or the private network. :class:`UrlGuard` refuses:

* schemes other than the allowed ones, user-info (``user@host``),
  backslashes, whitespace and control characters (parser differentials);
* hosts that are IP addresses in loopback, private, link-local,
  multicast, reserved, unspecified or otherwise non-global ranges, in any
  spelling a browser or C library accepts: decimal ``2130706433``, octal
  ``0177.0.0.1``, hex ``0x7f.1``, short ``127.1``, and IPv6 forms that
  embed an IPv4 address (mapped ``::ffff:127.0.0.1``, 6to4, Teredo, NAT64);
* ``localhost`` and ``*.localhost``;
* with :meth:`UrlGuard.check`, host names that *resolve* to any refused
  address (every address must pass, not just the first).

:meth:`UrlGuard.check_syntax` needs no network (the pydantic type
:data:`PublicUrl` uses it); :meth:`UrlGuard.check` also resolves the name
through an injectable :class:`Resolver`. Connect to one of the returned
``addresses`` (keep the host name for TLS and ``Host``) or a rebinding DNS
server can answer differently the second time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import Annotated, Protocol
from urllib.parse import urlsplit

from pydantic import AfterValidator

from lms_shared.security._errors import UnsafeURLError

__all__ = ["CheckedURL", "PublicUrl", "Resolver", "SystemResolver", "UrlGuard", "parse_ipv4_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_URL = 2048


class Resolver(Protocol):
    """Resolves a host name to IP address strings."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``; raise ``OSError`` when it does not resolve."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``) with a timeout.

    Args:
        timeout: seconds one resolution may take.
    """

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``getaddrinfo`` gives for ``host``."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL that passed the guard.

    Attributes:
        url: the URL as given.
        scheme: lower-case scheme.
        host: lower-case host name or address, without brackets.
        port: explicit or default port.
        addresses: the allowed addresses it resolved to (connect to these).
    """

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _ipv4_number(part: str) -> int | None:
    radix, digits = 10, "0123456789"
    if part[:2] in ("0x", "0X"):
        part, radix, digits = part[2:], 16, "0123456789abcdefABCDEF"
    elif len(part) > 1 and part[0] == "0":
        part, radix, digits = part[1:], 8, "01234567"
    if not part:
        return 0
    if any(ch not in digits for ch in part):
        return None
    return int(part, radix)


def parse_ipv4_host(host: str) -> ipaddress.IPv4Address | None:
    """Read a host the way browsers and ``inet_aton`` do (WHATWG URL rules).

    Returns:
        The address when the host ends in a number, ``None`` for a name.

    Raises:
        UnsafeURLError: it ends in a number but is not a valid IPv4 address
            (browsers refuse those too).
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not last or (not last.isdigit() and _ipv4_number(last) is None):
        return None
    numbers = [_ipv4_number(p) if p else None for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise UnsafeURLError(f"invalid numeric host {host!r}")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UnsafeURLError(f"invalid numeric host {host!r}")
    address = values[-1]
    for i, n in enumerate(values[:-1]):
        address += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(address)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _refusal(ip: IPAddress, allow_private: bool) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            reason = _refusal(inner, allow_private)
            if reason is not None:
                return f"{reason} (embedded in {ip})"
        if ip.is_site_local:
            return "site-local"
    checks = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    if ip.is_private:
        return None if allow_private else "private"
    if not ip.is_global:
        return "not globally routable"
    return None


class UrlGuard:
    """Refuses URLs that would reach internal targets.

    Args:
        schemes: allowed schemes (``https`` and ``http`` by default).
        ports: allowed ports; any port when ``None``.
        allow_private: allow RFC 1918 / unique-local addresses (never
            loopback, link-local or the metadata service).
        allowed_networks: networks allowed whatever their kind (an
            internal partner range, say).
        allowed_hosts: host names trusted without the address check.
        resolver: resolves names in :meth:`check`; the system's by default.
    """

    def __init__(
        self,
        *,
        schemes: Set[str] = frozenset({"https", "http"}),
        ports: Set[int] | None = None,
        allow_private: bool = False,
        allowed_networks: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.schemes = frozenset(s.lower() for s in schemes)
        self.ports = frozenset(ports) if ports is not None else None
        self.allow_private = allow_private
        self.allowed_networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )
        self.allowed_hosts = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self.resolver: Resolver = resolver or SystemResolver()

    def check_address(self, address: str | IPAddress) -> None:
        """Refuse an address outside the allowed kinds.

        Raises:
            UnsafeURLError: naming the kind (loopback, private, ...).
        """
        if isinstance(address, str):
            address = address.split("%", 1)[0]  # a resolver may add an IPv6 zone
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise UnsafeURLError(f"not an IP address: {address!r}") from None
        if any(ip in net for net in self.allowed_networks):
            return
        reason = _refusal(ip, self.allow_private)
        if reason is not None:
            raise UnsafeURLError(f"{ip} is a {reason} address")

    def check_syntax(self, url: str) -> tuple[str, str, int, IPAddress | None]:
        """Check everything that needs no network.

        Returns:
            ``(scheme, host, port, ip)``; ``ip`` is ``None`` for host names.

        Raises:
            UnsafeURLError: naming what was refused.
        """
        if not isinstance(url, str) or not url or len(url) > _MAX_URL:
            raise UnsafeURLError(f"a URL is 1-{_MAX_URL} characters")
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
            raise UnsafeURLError("URL contains whitespace, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeURLError(f"malformed URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise UnsafeURLError(f"scheme {scheme or '(none)'!r} is not allowed")
        if "@" in parts.netloc:
            raise UnsafeURLError("URLs with user info (user@host) are not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise UnsafeURLError("URL has no host")
        port = port if port is not None else _DEFAULT_PORTS.get(scheme, 0)
        if self.ports is not None and port not in self.ports:
            raise UnsafeURLError(f"port {port} is not allowed")
        ip: IPAddress | None
        if parts.netloc.rpartition("@")[2].startswith("["):
            if "%" in host:
                raise UnsafeURLError("IPv6 zone identifiers are not allowed")
            try:
                ip = ipaddress.IPv6Address(host)
            except ValueError:
                raise UnsafeURLError(f"invalid IPv6 host {host!r}") from None
        else:
            try:  # IDNA first: full-width digits and dots must not hide an address
                host = host.encode("idna").decode("ascii").lower()
            except UnicodeError:
                raise UnsafeURLError(f"invalid host name {host!r}") from None
            ip = parse_ipv4_host(host)
        if ip is not None:
            self.check_address(ip)
            return scheme, str(ip), port, ip
        ascii_host = host
        if host in self.allowed_hosts:
            return scheme, ascii_host, port, None
        if ascii_host == "localhost" or ascii_host.endswith(".localhost"):
            raise UnsafeURLError(f"{host} is a loopback host name")
        return scheme, ascii_host, port, None

    async def check(self, url: str) -> CheckedURL:
        """Check the URL and every address its host resolves to.

        Raises:
            UnsafeURLError: refused, or the host does not resolve.
        """
        scheme, host, port, ip = self.check_syntax(url)
        if ip is not None:
            return CheckedURL(url, scheme, host, port, (str(ip),))
        try:
            addresses = await self.resolver.resolve(host, port)
        except (OSError, TimeoutError):
            raise UnsafeURLError(f"host {host!r} does not resolve") from None
        if not addresses:
            raise UnsafeURLError(f"host {host!r} does not resolve")
        if host not in self.allowed_hosts:
            for address in addresses:
                try:
                    self.check_address(address)
                except UnsafeURLError as exc:
                    raise UnsafeURLError(
                        f"host {host!r} resolves to a refused address: {exc}"
                    ) from None
        return CheckedURL(url, scheme, host, port, tuple(addresses))


_default: list[UrlGuard] = []


def _public_url(value: str) -> str:
    if not _default:
        _default.append(UrlGuard())
    _default[0].check_syntax(value)
    return value


PublicUrl = Annotated[str, AfterValidator(_public_url)]
"""An http(s) URL whose host is not an internal address (syntax only, no DNS).

Before fetching it, still ``await UrlGuard().check(url)``: a name can
resolve to an internal address.
"""
