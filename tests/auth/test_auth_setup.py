"""``service.auth`` from settings, the public API of ``lms_shared.auth``, nothing at import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jwt
import pytest

import lms_shared.auth
from lms_shared import ConfigurationError, Service, SettingsError
from lms_shared.auth import Principal, SigningKey
from lms_shared.http import jwks_router, require
from lms_shared.testing import service_client

from .conftest import ISSUER


def test_errors_are_problems() -> None:
    from lms_shared import ProblemError, ServiceUnavailable

    assert issubclass(lms_shared.auth.InvalidToken, lms_shared.auth.AuthenticationFailed)
    assert issubclass(lms_shared.auth.AuthenticationFailed, ProblemError)
    assert issubclass(lms_shared.auth.PermissionDenied, ProblemError)
    assert issubclass(lms_shared.auth.KeysUnavailable, ServiceUnavailable)
    assert lms_shared.auth.PermissionDenied("a:b").status == 403


PROBE = """
import sys, threading
threads = threading.active_count()
import lms_shared.auth
from lms_shared import create_service, load_settings
service = create_service("probe", "1", settings=load_settings(
    auth_issuer="https://id", auth_jwks_url="http://127.0.0.1:9/jwks"))
assert "sqlalchemy" not in sys.modules, "SQLAlchemy imported"
assert threading.active_count() == threads, "a thread was started"
assert service.auth.keys is not None and not service.auth.keys.loaded
print("clean")
"""


def test_nothing_happens_at_import_or_construction(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=str(tmp_path),
        check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"auth_jwks_url": "http://id/jwks"}, SettingsError, "LMS_AUTH_ISSUER"),
        (
            {"auth_issuer": ISSUER, "auth_jwks_url": "http://id/j", "auth_hs256_secret": "s" * 32},
            ConfigurationError,
            "cannot be used with",
        ),
        ({"auth_issuer": ISSUER, "auth_hs256_secret": "short"}, SettingsError, "32 bytes"),
        (
            {"auth_issuer": ISSUER, "auth_jwks_url": "http://id/j", "auth_algorithms": ["HS256"]},
            ConfigurationError,
            "only with LMS_AUTH_HS256_SECRET",
        ),
        (
            {"auth_issuer": ISSUER, "auth_signing_keys": ["not a pem"]},
            SettingsError,
            "SIGNING_KEYS",
        ),
    ],
)
def test_contradicting_settings_fail_at_construction(
    make_service: Callable[..., Service],
    overrides: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        make_service(**overrides)


def test_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_service: Callable[..., Service]
) -> None:
    monkeypatch.setenv("LMS_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("LMS_AUTH_JWKS_URL", "http://identity:8000/.well-known/jwks.json")
    monkeypatch.setenv("LMS_AUTH_AUDIENCE", '["lms", "courses"]')
    monkeypatch.setenv("LMS_AUTH_ROLES", '{"observer": ["course:read"]}')
    monkeypatch.setenv("LMS_AUTH_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("LMS_AUTH_TOKEN_URL", "http://identity:8000/oauth2/token")
    service = make_service()
    config = service.auth.config
    assert config.audiences == ("lms", "courses")
    assert config.client_secret is not None
    assert config.client_secret.get_secret_value() == "s3cret"
    assert service.auth.fetches_keys
    assert service.auth.tokens is not None
    redacted = service.settings.redacted()
    assert redacted["auth_client_secret"] == "**********"


async def test_hs256_mode_end_to_end(make_service: Callable[..., Service]) -> None:
    secret = "a-shared-secret-of-at-least-32-bytes!"
    service = make_service(auth_issuer=ISSUER, auth_hs256_secret=secret)

    @service.router.get("/x")
    async def x(who: Principal = require("course:read")) -> dict[str, str]:
        return {"sub": who.subject}

    now = int(service.clock.now().timestamp())
    claims = {
        "iss": ISSUER,
        "aud": "courses",
        "sub": "svc",
        "iat": now,
        "exp": now + 60,
        "roles": ["observer"],
    }
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "at+jwt"})
    rsa_token = SigningKey.generate("ES256")
    async with service_client(service) as client:
        ok = await client.get("/x", headers={"authorization": f"Bearer {token}"})
        refused = await client.get(
            "/x",
            headers={
                "authorization": "Bearer "
                + jwt.encode(
                    claims, rsa_token.private_key, algorithm="ES256", headers={"typ": "at+jwt"}
                )
            },
        )
    assert ok.json() == {"sub": "svc"}
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the algorithm 'ES256' is not accepted"


async def test_identity_mode_signs_verifies_and_publishes(
    make_service: Callable[..., Service],
) -> None:
    current, previous = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    service = make_service(
        "identity",
        auth_issuer=ISSUER,
        auth_signing_keys=[current.to_pem().decode(), previous.to_pem().decode()],
    )
    signer = service.auth.signer
    assert signer is not None
    assert signer.current.kid == current.kid
    service.include(jwks_router(signer))

    @service.router.get("/me")
    async def me(who: Principal = require()) -> dict[str, str]:
        return {"sub": who.subject}

    token = signer.issue(Principal(subject="ada"), audience="identity")
    async with service_client(service) as client:
        jwks = await client.get("/.well-known/jwks.json")
        mine = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert jwks.headers["content-type"] == "application/jwk-set+json"
    assert [k["kid"] for k in jwks.json()["keys"]] == [current.kid, previous.kid]
    assert mine.json() == {"sub": "ada"}
    own = service.auth.tokens
    assert own is not None
    claims = jwt.decode(await own.token("courses"), options={"verify_signature": False})
    assert (claims["sub"], claims["kind"], claims["aud"]) == ("identity", "service", "courses")
