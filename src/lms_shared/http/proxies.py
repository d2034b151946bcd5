"""Who the client is behind reverse proxies, believing only trusted ones.

``X-Forwarded-For`` is a list anyone can write to: a client sends
``X-Forwarded-For: 1.2.3.4`` and a naive server rate-limits (or logs, or
allow-lists) the wrong address. :class:`TrustedProxies` believes the
forwarding headers only when the connection comes from a configured
proxy (``LMS_TRUSTED_PROXIES``), and then walks the list from the right,
skipping trusted hops, to the first address no trusted proxy vouches
for. With no proxies configured the headers are ignored entirely.

The headers are honoured in one place: :class:`ForwardedMiddleware`, the
outermost middleware of a service (installed when ``LMS_TRUSTED_PROXIES``
is set), rewrites the scope's ``client`` and ``scheme`` once. Everything
after it reads the scope: ``request.client``, the rate-limit keys, HSTS,
``request.url``, access logs. The server must not rewrite them first:
``lms-shared serve`` runs uvicorn with ``proxy_headers=False``; run plain
uvicorn with ``--no-proxy-headers`` (its default believes ``127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

from lms_shared.caching import BoundedCache
from lms_shared.errors import SettingsError
from lms_shared.settings import Settings
from lms_shared.types import ASGIApp, Receive, Scope, Send

__all__ = ["ForwardedMiddleware", "TrustedProxies"]

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
        self._cache: BoundedCache[str, bool] = BoundedCache(_CACHE_MAX)

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
        self._cache.set(address, result)
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


class ForwardedMiddleware:
    """Pure ASGI: the client and scheme a trusted proxy forwarded, set once in the scope.

    For a connection from one of ``proxies``, ``scope["client"]`` becomes
    ``(address, 0)`` (the address :meth:`TrustedProxies.client_ip` finds)
    and ``scope["scheme"]`` the forwarded one; the proxy's own address is
    kept in ``scope["lms.peer"]``. Any other connection passes untouched,
    whatever headers it sent. Install it outermost, so every later reader
    of the scope sees the same client.

    Args:
        app: the wrapped ASGI app.
        proxies: whose forwarding headers to believe.
    """

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        client = scope.get("client")
        if kind in ("http", "websocket") and client and self.proxies.trusts(str(client[0])):
            address = self.proxies.client_ip(scope)
            scheme = self.proxies.scheme(scope)
            if kind == "websocket":
                scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
            elif scheme not in ("http", "https"):
                scheme = scope.get("scheme", "http")
            scope["lms.peer"] = client
            scope["client"] = (address, 0) if address else client
            scope["scheme"] = scheme
        await self.app(scope, receive, send)
