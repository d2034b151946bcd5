"""Security headers, CORS and trusted proxies, over HTTP through a real service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.responses import HTMLResponse, JSONResponse

from lms_shared import Service, SettingsError, create_service, load_settings
from lms_shared.http import CorsPolicy, SecurityHeadersMiddleware, TrustedProxies
from lms_shared.http.security_headers import API_CSP, DOCS_CSP
from lms_shared.testing import service_client


def build(**overrides: Any) -> Service:
    service = create_service("courses", "1.0.0", settings=load_settings(**overrides))

    @service.router.get("/v1/courses")
    async def courses() -> dict[str, bool]:
        return {"ok": True}

    @service.router.get("/v1/leaky")
    async def leaky() -> JSONResponse:
        return JSONResponse(
            {"ok": True},
            headers={
                "server": "uvicorn/0.30 (Ubuntu)",
                "x-powered-by": "FastAPI",
                "content-security-policy": "default-src 'self'",
                "cache-control": "public, max-age=60",
            },
        )

    return service


async def test_api_responses_get_the_rest_set() -> None:
    async with service_client(build()) as client:
        ok = await client.get("/v1/courses")
        missing = await client.get("/v1/nothing")
    for response in (ok, missing):
        headers = response.headers
        assert headers["content-security-policy"] == API_CSP
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "deny"
        assert headers["cache-control"] == "no-store, max-age=0"
        assert "strict-transport-security" not in headers  # plain http
        # the document headers do nothing for JSON (OWASP REST Security Cheat Sheet)
        assert "permissions-policy" not in headers
        assert "cross-origin-embedder-policy" not in headers
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_html_pages_get_the_whole_owasp_set() -> None:
    service = build()

    @service.router.get("/v1/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>hello</p>")

    async with service_client(service) as client:
        response = await client.get("/v1/page")
    headers = response.headers
    assert headers["content-security-policy"] == API_CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "deny"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    assert headers["permissions-policy"].startswith("accelerometer=(), autoplay=()")
    assert headers["x-permitted-cross-domain-policies"] == "none"
    assert headers["x-dns-prefetch-control"] == "off"
    policy = headers["permissions-policy"].split(", ")
    assert {"interest-cohort=()", "unload=()", "camera=()", "sync-xhr=(self)"} <= set(policy)
    assert headers["cache-control"] == "no-store, max-age=0"
    assert len(headers.get_list("content-security-policy")) == 1


def test_headers_for_picks_the_set() -> None:
    middleware = SecurityHeadersMiddleware(lambda *_: None, api_headers={"x-api": "1"})  # type: ignore[arg-type]
    scope = {"type": "http", "path": "/v1/x", "scheme": "https", "headers": []}
    api = dict(middleware.headers_for(scope))
    page = dict(middleware.headers_for(scope, html=True))
    assert set(api) == {b"x-api", b"strict-transport-security"}
    assert page[b"permissions-policy"].startswith(b"accelerometer")
    assert b"x-api" not in page


async def test_hsts_only_over_tls() -> None:
    service = build()
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://courses.test") as client:
        response = await client.get("/v1/courses")
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


async def test_forwarded_proto_is_believed_only_from_trusted_proxies() -> None:
    async with service_client(build()) as client:
        spoofed = await client.get("/v1/courses", headers={"x-forwarded-proto": "https"})
    assert "strict-transport-security" not in spoofed.headers
    async with service_client(build(trusted_proxies=["127.0.0.1"])) as client:
        proxied = await client.get("/v1/courses", headers={"x-forwarded-proto": "https"})
        downgraded = await client.get("/v1/courses", headers={"x-forwarded-proto": "https, http"})
    assert "strict-transport-security" in proxied.headers
    assert "strict-transport-security" not in downgraded.headers  # nearest proxy says http


async def test_app_headers_win_and_leaky_ones_are_stripped() -> None:
    async with service_client(build()) as client:
        response = await client.get("/v1/leaky")
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert response.headers["content-security-policy"] == "default-src 'self'"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers.get_list("content-security-policy") == ["default-src 'self'"]


async def test_docs_page_gets_its_own_csp() -> None:
    async with service_client(build()) as client:
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert "cross-origin-embedder-policy" not in docs.headers


async def test_settings_change_csp_and_hsts_or_turn_headers_off() -> None:
    service = build(content_security_policy="default-src 'none'", hsts_max_age=0)
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://courses.test") as client:
        response = await client.get("/v1/courses")
    assert response.headers["content-security-policy"] == "default-src 'none'"
    assert "strict-transport-security" not in response.headers
    async with service_client(build(security_headers=False)) as client:
        bare = await client.get("/v1/courses")
    assert "content-security-policy" not in bare.headers


async def test_path_overrides_and_prefixes() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = SecurityHeadersMiddleware(
        app,
        path_overrides={
            "/static/*": {"content-security-policy": "img-src 'self'", "x-frame-options": None}
        },
        hsts_preload=True,
    )
    scope = {"type": "http", "path": "/static/logo.png", "scheme": "https", "headers": []}
    await middleware(scope, lambda: None, send)  # type: ignore[arg-type]
    headers = dict(sent[0]["headers"])
    assert headers[b"content-security-policy"] == b"img-src 'self'"
    assert b"x-frame-options" not in headers
    assert headers[b"strict-transport-security"].endswith(b"; preload")
    with pytest.raises(ValueError, match="invalid header"):
        SecurityHeadersMiddleware(app, headers={"x-evil": "a\r\nset-cookie: x"})


async def test_cors_from_settings() -> None:
    service = build(cors_origins=["https://app.lms.example"], cors_allow_credentials=True)
    async with service_client(service) as client:
        preflight = await client.options(
            "/v1/courses",
            headers={
                "origin": "https://app.lms.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization",
            },
        )
        simple = await client.get("/v1/courses", headers={"origin": "https://app.lms.example"})
        foreign = await client.get("/v1/courses", headers={"origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.lms.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-allow-origin"] == "https://app.lms.example"
    assert "ratelimit" in simple.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    "origins",
    [["*", "https://a.example"], ["https://a.example/path"], ["ftp://a.example"], ["not a url"]],
)
def test_bad_cors_origins_are_refused(origins: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        create_service("courses", "1.0.0", settings=load_settings(cors_origins=origins))
    assert caught.value.problems[0][0] == "LMS_CORS_ORIGINS"


def test_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(SettingsError, match="credentials"):
        CorsPolicy(origins=("*",), allow_credentials=True)
    assert CorsPolicy(origins=("*",)).middleware_options()["allow_origins"] == ["*"]


def scope(peer: str, *headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 4000),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }


def test_untrusted_peers_cannot_claim_another_address() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    spoof = scope("203.0.113.9", ("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "https"))
    assert proxies.client_ip(spoof) == "203.0.113.9"
    assert proxies.scheme(spoof) == "http"
    assert TrustedProxies().client_ip(spoof) == "203.0.113.9"


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("1.1.1.1, 198.51.100.7", "198.51.100.7"),  # a forged first hop is ignored
        ("198.51.100.7, 10.0.0.2", "198.51.100.7"),  # two trusted proxies
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),  # all trusted: the farthest
        ("garbage, 198.51.100.7", "198.51.100.7"),
        ("198.51.100.7, garbage", "10.0.0.1"),  # unreadable hop: stop at the proxy
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("198.51.100.7:5555", "198.51.100.7"),
    ],
)
def test_forwarded_for_is_walked_from_the_right(xff: str, client: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_ip(scope("10.0.0.1", ("x-forwarded-for", xff))) == client


def test_rfc_7239_forwarded_header() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    request = scope(
        "10.0.0.1",
        ("x-forwarded-for", "1.2.3.4"),  # not the configured header: ignored
        ("forwarded", 'for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"'),
    )
    assert proxies.client_ip(request) == "2001:db8:cafe::17"
    assert proxies.scheme(request) == "https"


def test_trusted_proxies_validate_their_entries() -> None:
    with pytest.raises(ValueError, match="not an IP"):
        TrustedProxies(["10.0.0.0/8", "proxy.internal"])
    assert TrustedProxies(["::ffff:10.0.0.1"]).trusts("10.0.0.1") is False
    assert TrustedProxies(["10.0.0.1"]).trusts("::ffff:10.0.0.1") is True
