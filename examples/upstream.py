"""Calling another service of the platform over HTTP.

An :class:`Upstream` owns one ``httpx.AsyncClient``, opened when the
service starts and closed when it stops (see :meth:`Upstream.component`),
never at import. It forwards the current request id, authenticates as the calling service
(a service token from identity, see :mod:`examples.access`), maps "not there" to
``None`` and "cannot ask" to a 503 problem, so a route reads like this::

    user = await identity.get_json(f"/v1/users/{user_id}")
    if user is None:
        raise NotFound(f"user {user_id} does not exist")

``LMS_DISCOVERY_URL`` and the chassis' own client (retries, breaker,
deadline) replace this class once they exist.
"""

from __future__ import annotations

from typing import Any

import httpx

from lms_shared import FunctionComponent, ServiceUnavailable
from lms_shared.auth import Auth
from lms_shared.http import REQUEST_ID_HEADER
from lms_shared.observability import current_request_id

__all__ = ["Upstream"]


class Upstream:
    """Another service, reached at ``url``.

    Args:
        name: the other service's name (``identity``), used in errors.
        url: its base URL, ``http://127.0.0.1:8001``.
        timeout: seconds each call may take.
        transport: an httpx transport to use instead of the network (tests
            pass ``httpx.ASGITransport(app=other.app)``).
        auth: the calling service's ``service.auth``: every call carries
            its service token for ``name`` (``auth.outgoing(name)``, fetched
            from identity and cached), looked up when the client opens, so
            credentials installed after the service was built count too.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: Auth | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self._transport = transport
        self._auth = auth
        self._client: httpx.AsyncClient | None = None

    def component(self) -> FunctionComponent:
        """The component that opens the client at start-up and closes it at shutdown."""
        return FunctionComponent(f"{self.name}-client", start=self.open, stop=self.close)

    async def open(self) -> None:
        """Create the HTTP client (connection pool)."""
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=self.timeout,
            transport=self._transport,
            auth=None if self._auth is None else self._auth.outgoing(self.name),
        )

    async def close(self) -> None:
        """Close the HTTP client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_json(self, path: str) -> dict[str, Any] | None:
        """GET ``path`` and return the JSON object, or ``None`` on 404.

        Raises:
            ServiceUnavailable: the service is unreachable, timed out or
                answered anything but 200 or 404.
        """
        response = await self._get(path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"the {self.name} service answered {response.status_code}",
                headers={"retry-after": "1"},
            )
        body = response.json()
        if not isinstance(body, dict):
            raise ServiceUnavailable(f"the {self.name} service answered an unexpected body")
        return body

    async def ping(self) -> str:
        """Readiness check: the service answers its liveness probe.

        Raises:
            httpx.HTTPError: it is unreachable or not live.
        """
        client = self._require_client()
        response = await client.get("/health/live")
        response.raise_for_status()
        return f"{self.url} is live"

    async def _get(self, path: str) -> httpx.Response:
        client = self._require_client()
        request_id = current_request_id()
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        try:
            return await client.get(path, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"the {self.name} service is unreachable", headers={"retry-after": "1"}
            ) from exc

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"the {self.name} client is not open; start the service first")
        return self._client
