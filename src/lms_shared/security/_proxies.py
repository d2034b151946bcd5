"""Who the client is behind reverse proxies, believing only trusted ones.

``X-Forwarded-For`` is a list anyone can write to: a client sends
``X-Forwarded-For: 1.2.3.4`` and a naive server rate-limits (or logs, or
allow-lists) the wrong address. :class:`TrustedProxies` believes the
forwarding headers only when the connection comes from a configured
proxy (``LMS_TRUSTED_PROXIES``), and then walks the list from the right,
skipping trusted hops, to the first address no trusted proxy vouches
for. With no proxies configured the headers are ignored entirely.

If uvicorn already rewrites the client (``--proxy-headers`` with
``--forwarded-allow-ips``), leave ``LMS_TRUSTED_PROXIES`` empty: the
scope's client is then already the real one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

from lms_shared.errors import SettingsError
from lms_shared.http.types import Scope
from lms_shared.settings import Settings

__all__ = ["TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_MAX = 4096


def _clean(value: str) -> str:
    """An address from a header element: quotes, brackets and ports removed."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    if value.count(":") == 1:  # IPv4 with a port
        return value.split(":", 1)[0]
    return value


class TrustedProxies:
    """The proxies whose forwarding headers are believed.

    Args:
        networks: IPs or CIDRs (``"10.0.0.0/8"``, ``"127.0.0.1"``).
        header: which header the proxies write: ``x-forwarded-for`` (with
            ``x-forwarded-proto``) or RFC 7239 ``forwarded``. Only that
            one is read: a client could send the other.

    Raises:
        ValueError: an entry is not an address or network.
    """

    def __init__(
        self,
        networks: Iterable[str] = (),
        *,
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ) -> None:
        parsed: list[Network] = []
        for entry in networks:
            try:
                parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        self.networks = tuple(parsed)
        self.header = header
        self._for = header.encode()
        self._proto = b"x-forwarded-proto" if header == "x-forwarded-for" else b"forwarded"
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustedProxies:
        """The proxies of ``LMS_TRUSTED_PROXIES``.

        Raises:
            SettingsError: an entry is not an address or network.
        """
        try:
            return cls(settings.trusted_proxies)
        except ValueError as exc:
            raise SettingsError([("LMS_TRUSTED_PROXIES", str(exc))]) from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r}, header={self.header!r})"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        known = self._cache.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            result = False
        else:
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            result = any(ip in net for net in self.networks)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[address] = result
        return result

    def client_ip(self, scope: Scope) -> str | None:
        """The client's address: the peer, or what trusted proxies say it is."""
        client = scope.get("client")
        peer: str | None = str(client[0]) if client else None
        if peer is None or not self.networks or not self.trusts(peer):
            return peer
        hops = self._hops(scope)
        current: str = peer
        for hop in reversed(hops):
            if not hop:
                return current  # garbage beyond a trusted hop: stop at that hop
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return current
            current = hop
            if not self.trusts(hop):
                return hop
        return current

    def scheme(self, scope: Scope) -> str:
        """``https`` or ``http``: the scope's, or the nearest trusted proxy's."""
        scheme = str(scope.get("scheme", "http"))
        client = scope.get("client")
        if not self.networks or not client or not self.trusts(client[0]):
            return scheme
        proto = None
        for name, value in scope["headers"]:
            if name == self._proto:
                proto = value.decode("latin-1")
        if proto is None:
            return scheme
        if self.header == "forwarded":
            found = [
                v.strip().strip('"').lower()
                for k, _, v in (p.partition("=") for p in proto.replace(",", ";").split(";"))
                if k.strip().lower() == "proto"
            ]
            return found[-1] if found else scheme
        last = proto.split(",")[-1].strip().lower()
        return last if last in {"http", "https", "ws", "wss"} else scheme

    def _hops(self, scope: Scope) -> list[str]:
        values = [v.decode("latin-1") for n, v in scope["headers"] if n == self._for]
        if not values:
            return []
        joined = ",".join(values)
        if self.header == "x-forwarded-for":
            return [_clean(item) for item in joined.split(",")]
        hops = []
        for element in joined.split(","):
            address = ""
            for pair in element.split(";"):
                key, _, value = pair.partition("=")
                if key.strip().lower() == "for":
                    address = _clean(value)
            hops.append(address)
        return hops
