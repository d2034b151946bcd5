"""Service-to-service: the token endpoint, client credentials, httpx auth, the callee's view."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lms_shared import Service
from lms_shared.auth import (
    ClientCredentials,
    Principal,
    ServiceTokenAuth,
    SignerTokens,
    TokenSigner,
    TokenUnavailable,
)
from lms_shared.clock import SystemClock
from lms_shared.http import require
from lms_shared.testing import ManualClock, service_client

from .conftest import CLIENTS, ThreadServer


@pytest.fixture
def token_url(identity_server: ThreadServer) -> str:
    return f"{identity_server.url}/oauth2/token"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def post(url: str, body: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


async def test_the_token_endpoint_issues_a_service_token(token_url: str) -> None:
    response = await post(
        token_url,
        "grant_type=client_credentials&audience=enrollments",
        {**FORM, "authorization": basic("grading", CLIENTS["grading"])},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    import jwt

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "enrollments"
    assert (claims["sub"], claims["kind"], claims["roles"]) == ("grading", "service", ["service"])
    assert claims["exp"] - claims["iat"] == 300


async def test_client_secret_post_and_scope(token_url: str) -> None:
    response = await post(
        token_url,
        "grant_type=client_credentials&audience=courses&scope=course:read"
        f"&client_id=grading&client_secret={CLIENTS['grading']}",
        FORM,
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "course:read"


GRANT = "grant_type=client_credentials&audience=x"


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (GRANT, {"authorization": basic("grading", "wrong")}, 401, "invalid_client"),
        (GRANT, {"authorization": basic("nobody", "x")}, 401, "invalid_client"),
        (GRANT, {}, 401, "invalid_client"),
        ("grant_type=password&audience=x", None, 400, "unsupported_grant_type"),
        ("grant_type=client_credentials", None, 400, "invalid_target"),
        ("grant_type=client_credentials&audience=../../admin", None, 400, "invalid_target"),
        ("grant_type=client_credentials&audience=x&scope=everything", None, 400, "invalid_scope"),
        (f"grant_type=client_credentials&{GRANT}", None, 400, "invalid_request"),
        (f"{GRANT}&client_id=grading", None, 400, "invalid_request"),
        ("%zz", None, 400, "invalid_request"),
    ],
)  # fmt: skip
async def test_token_endpoint_errors(
    token_url: str, body: str, headers: dict[str, str] | None, status: int, error: str
) -> None:
    sent = {
        **FORM,
        **(
            headers
            if headers is not None
            else {"authorization": basic("grading", CLIENTS["grading"])}
        ),
    }
    response = await post(token_url, body, sent)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == error
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="identity"'


async def test_the_token_endpoint_wants_a_form(token_url: str) -> None:
    response = await post(
        token_url, '{"grant_type": "client_credentials"}', {"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_client_credentials_caches_until_shortly_before_expiry(token_url: str) -> None:
    clock = ManualClock(start=datetime.now(UTC))
    source = ClientCredentials(token_url, "grading", CLIENTS["grading"], clock=clock, margin=30)
    await source.start()
    try:
        first = await source.token("enrollments")
        assert await source.token("enrollments") == first
        other = await source.token("courses")
        assert other != first
        assert source.requests == 2
        await clock.advance(300 - 30 - 1)
        assert await source.token("enrollments") == first
        await clock.advance(1)
        assert await source.token("enrollments") != first
        assert source.requests == 3
    finally:
        await source.stop()


async def test_concurrent_callers_share_one_token_request(token_url: str) -> None:
    source = ClientCredentials(token_url, "grading", CLIENTS["grading"], clock=SystemClock())
    await source.start()
    try:
        tokens = await asyncio.gather(*(source.token("enrollments") for _ in range(20)))
        assert len(set(tokens)) == 1
        assert source.requests == 1
    finally:
        await source.stop()


async def test_refused_or_unreachable_identity_is_a_503(token_url: str) -> None:
    wrong = ClientCredentials(token_url, "grading", "wrong", clock=SystemClock())
    gone = ClientCredentials("http://127.0.0.1:9/oauth2/token", "grading", "x", clock=SystemClock())
    for source in (wrong, gone):
        await source.start()
        try:
            with pytest.raises(TokenUnavailable) as caught:
                await source.token("enrollments")
            assert caught.value.status == 503
        finally:
            await source.stop()
    with pytest.raises(TokenUnavailable, match="not started"):
        await wrong.token("x")


async def test_a_refused_token_is_replaced_and_the_call_retried_once(
    signer: TokenSigner,
) -> None:
    me = Principal(subject="grading", kind="service", roles=frozenset({"service"}))
    source = SignerTokens(signer, me)
    seen: list[str] = []

    def callee(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if len(seen) == 1:
            return httpx.Response(401, headers={"www-authenticate": 'Bearer error="invalid_token"'})
        return httpx.Response(200, json={"body": request.content.decode()})

    auth = ServiceTokenAuth(source, "enrollments")
    async with httpx.AsyncClient(transport=httpx.MockTransport(callee), auth=auth) as client:
        response = await client.post("http://enrollments/x", content=b"payload")
    assert response.status_code == 200
    assert response.json() == {"body": "payload"}
    assert len(seen) == 2
    assert seen[0] != seen[1]
    with pytest.raises(RuntimeError, match="AsyncClient"):
        httpx.Client(transport=httpx.MockTransport(callee), auth=auth).get("http://e/x")


async def test_services_call_each_other_with_service_tokens(
    make_protected: Callable[..., Service], jwks_url: str, token_url: str
) -> None:
    """grading -> enrollments: the callee sees a service principal, users still need roles."""
    enrollments = make_protected("enrollments", clock_=SystemClock(), auth_jwks_url=jwks_url)

    @enrollments.router.get("/v1/enrollments/{enrollment_id}")
    async def enrollment(
        enrollment_id: str, who: Principal = require("enrollment:read")
    ) -> dict[str, Any]:
        return {"id": enrollment_id, "caller": who.subject, "kind": who.kind}

    grading = make_protected(
        "grading",
        clock_=SystemClock(),
        auth_jwks_url=jwks_url,
        auth_token_url=token_url,
        auth_client_secret=CLIENTS["grading"],
    )
    async with service_client(enrollments) as callee_client, service_client(grading):
        outgoing = grading.auth.outgoing("enrollments")
        assert outgoing is not None
        transport = httpx.ASGITransport(app=enrollments.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://enrollments.test", auth=outgoing
        ) as client:
            response = await client.get("/v1/enrollments/e1")
            again = await client.get("/v1/enrollments/e2")
        anonymous = await callee_client.get("/v1/enrollments/e1")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "e1", "caller": "grading", "kind": "service"}
    assert again.status_code == 200
    assert grading.auth.tokens.requests == 1  # type: ignore[union-attr]
    assert anonymous.status_code == 401


def test_a_service_without_credentials_sends_no_token(make_service: Callable[..., Service]) -> None:
    assert make_service().auth.outgoing("enrollments") is None
