"""An httpx transport that fetches user-supplied URLs through the SSRF guard.

Checking a URL and then letting the HTTP client resolve the name again
leaves a gap: a DNS server that answers a public address to the check
and ``127.0.0.1`` to the connection (DNS rebinding) walks through it.
:class:`GuardedTransport` closes it. For every request, redirects
included, it runs :meth:`UrlGuard.check`, then connects to the address
that passed, keeping the name for the ``Host`` header and for TLS (SNI
and certificate checks)::

    async with httpx.AsyncClient(transport=GuardedTransport(UrlGuard())) as client:
        response = await client.get(body.avatar_url, follow_redirects=True)

A refused URL raises :class:`UnsafeURLError` from the request call.
"""

from __future__ import annotations

import ipaddress

import httpx

from lms_shared.security.urls import UrlGuard

__all__ = ["GuardedTransport"]


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks each request's URL and pins the connection to the checked address.

    Args:
        guard: the SSRF guard (its resolver is the only name lookup made).
        transport: the transport that sends the pinned request;
            ``httpx.AsyncHTTPTransport()`` by default.
    """

    def __init__(self, guard: UrlGuard, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.guard = guard
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check, pin and send one request.

        Raises:
            UnsafeURLError: the URL, or an address its host resolves to, is refused.
        """
        checked = await self.guard.check(str(request.url))
        address = str(ipaddress.ip_address(checked.addresses[0].split("%", 1)[0]))
        pinned = request.url.copy_with(host=address)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = checked.host
        headers = request.headers.copy()
        headers.setdefault("host", request.url.netloc.decode("ascii"))
        outgoing = httpx.Request(
            request.method,
            pinned,
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self.transport.handle_async_request(outgoing)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.transport.aclose()
