"""Tokens for local work: `lms-shared token mint` signs, local services in development trust.

The key and its JWKS live in the state folder; a service with no key
settings trusts them in development only, whichever of ``serve`` and
``mint`` comes first. Everything of it is refused with ``LMS_ENV=production``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lms_shared import Service
from lms_shared.auth import Principal
from lms_shared.auth._devkeys import (
    DevAuthError,
    DevAuthRefused,
    DevKeys,
    dev_auth_dir,
    dev_signing_key,
    mint_dev_token,
    read_dev_jwks,
)
from lms_shared.cli import app as cli
from lms_shared.clock import Clock, SystemClock
from lms_shared.http import require
from lms_shared.testing import ManualClock, service_client

runner = CliRunner()


def whoami(service: Service) -> Service:
    @service.router.get("/me")
    async def me(who: Principal = require("course:read")) -> dict[str, object]:
        return {"subject": who.subject, "roles": sorted(who.roles)}

    return service


def mint(state: Path, clock: Clock | None = None, **kwargs: object) -> str:
    """A token for ada, instructor, dated by ``clock`` (the system's: services use it)."""
    return mint_dev_token(
        state,
        env="development",
        clock=clock or SystemClock(),
        subject="ada",
        roles=["instructor"],
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_minted_token_is_accepted_by_a_service_in_development(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = whoami(make_service(state_dir=tmp_path))
    token = mint(tmp_path)
    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        me = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert ready.status_code == 200
    assert me.status_code == 200, me.text
    assert me.json() == {"subject": "ada", "roles": ["instructor"]}


async def test_a_key_made_after_the_service_started_is_picked_up(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = whoami(make_service(state_dir=tmp_path))
    async with service_client(service) as client:
        before = await client.get("/me", headers={"authorization": "Bearer a.b.c"})
        token = mint(tmp_path)  # serve first, mint second
        after = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert before.status_code == 401
    assert after.status_code == 200, after.text


async def test_configured_keys_switch_the_development_keys_off(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    token = mint(tmp_path)
    service = whoami(
        make_service(
            state_dir=tmp_path,
            auth_issuer="https://identity.test",
            auth_hs256_secret="kQ9-vT3x-Lp7w-Zr2m-Ny6c-Hb4s-Jd8f",
        )
    )
    async with service_client(service) as client:
        me = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_other_environments_do_not_trust_development_tokens(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    token = mint(tmp_path)
    service = whoami(make_service(state_dir=tmp_path, env="test"))
    async with service_client(service) as client:
        me = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 503  # nothing is trusted: not configured


def test_production_refuses_everything(tmp_path: Path) -> None:
    with pytest.raises(DevAuthRefused, match="LMS_ENV=production"):
        mint_dev_token(tmp_path, env="production", clock=ManualClock(), subject="ada")
    with pytest.raises(DevAuthRefused):
        dev_signing_key(tmp_path, env="production")
    with pytest.raises(DevAuthRefused):
        DevKeys(tmp_path, env="production")
    assert not dev_auth_dir(tmp_path).exists()  # nothing was written


def test_the_key_is_private_and_made_once(tmp_path: Path) -> None:
    first, made = dev_signing_key(tmp_path, env="development")
    again, made_again = dev_signing_key(tmp_path, env="development")
    assert (made, made_again) == (True, False)
    assert first.kid == again.kid
    key_file = dev_auth_dir(tmp_path) / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    os.chmod(key_file, 0o644)
    with pytest.raises(DevAuthError, match="readable by other users"):
        dev_signing_key(tmp_path, env="development")


def test_a_broken_key_file_is_a_typed_error(tmp_path: Path) -> None:
    folder = dev_auth_dir(tmp_path)
    folder.mkdir(parents=True)
    key_file = folder / "signing-key.pem"
    key_file.write_bytes(b"not a key")
    key_file.chmod(0o600)
    with pytest.raises(DevAuthError, match="not a usable private key"):
        dev_signing_key(tmp_path, env="development")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "larger than"),
        (b"[" * 8_000 + b"]" * 8_000, "nested deeper"),
        (b'{"keys": []}', "'keys' list"),
        (b'{"keys": [1]}', "unusable key"),
        (b'{"keys": 1, "keys": 2}', "not strict JSON"),
        (b"\xff\xfe", "not strict JSON"),
        (b" " * 20_000, "larger than"),
    ],
)
def test_a_hostile_jwks_is_a_typed_error(document: bytes, reason: str) -> None:
    with pytest.raises(DevAuthError, match=reason):
        read_dev_jwks(document, algorithms={"EdDSA"})


def test_mint_checks_its_arguments(tmp_path: Path) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="lifetime"):
        mint(tmp_path, clock, ttl=0)
    with pytest.raises(ValueError, match="role"):
        mint_dev_token(tmp_path, env="development", clock=clock, subject="a", roles=["Bad Role"])


def test_the_cli_prints_only_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path))
    args = ["token", "mint", "--sub", "ada", "--role", "instructor"]
    result = runner.invoke(cli, [*args, "--course-role", "c1=student", "--role", "wizard"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.count(".") == 2
    assert "made a development signing key" in result.stderr
    assert "'wizard' is not a role" in result.stderr
    keys = DevKeys(tmp_path, env="development")
    keys.reload()
    assert keys.find(None) is not None  # the one key of the published JWKS


def test_the_cli_refuses_production_and_bad_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path))
    bad = runner.invoke(cli, ["token", "mint", "--sub", "ada", "--course-role", "nocourse"])
    assert bad.exit_code == 2
    assert "COURSE=ROLE" in bad.output
    monkeypatch.setenv("LMS_ENV", "production")
    refused = runner.invoke(cli, ["token", "mint", "--sub", "ada"])
    assert refused.exit_code == 2
    assert "refused when LMS_ENV=production" in refused.stderr
    assert not dev_auth_dir(tmp_path).exists()
