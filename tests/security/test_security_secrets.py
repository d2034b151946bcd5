"""Passwords, production configuration checks and redaction of secrets and PII."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from lms_shared import Service, SettingsError, create_service, load_settings
from lms_shared.redaction import Redactor
from lms_shared.security import (
    InsecureSettingsError,
    PasswordHasher,
    PasswordHashError,
    check_production_settings,
    insecure_settings,
    new_key_spec,
    secret_weakness,
)
from lms_shared.testing import service_client

FAST = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}
STRONG = "q8Vx2mZr4Tn6Lp0Hw3Yc5Kd7Bf9Gj1Se!"


def test_hash_and_verify() -> None:
    hasher = PasswordHasher(**FAST)
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert hasher.verify(stored, "correct horse battery staple")
    assert not hasher.verify(stored, "Correct horse battery staple")
    assert hasher.hash("same") != hasher.hash("same")  # salted


def test_rehash_on_login_when_parameters_were_raised() -> None:
    old = PasswordHasher(**FAST).hash("pw-for-ann")
    stronger = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    ok, new = stronger.verify_and_update(old, "pw-for-ann")
    assert ok
    assert new is not None
    assert new.startswith("$argon2id$v=19$m=128,t=2,p=1$")
    assert stronger.verify_and_update(new, "pw-for-ann") == (True, None)
    assert stronger.verify_and_update(old, "wrong") == (False, None)


def test_unknown_users_and_bad_input_are_plain_failures() -> None:
    hasher = PasswordHasher(**FAST)
    assert not hasher.verify(None, "anything")
    assert hasher.verify_and_update(None, "anything") == (False, None)
    stored = hasher.hash("x" * 10)
    assert not hasher.verify(stored, "")
    assert not hasher.verify(stored, "x" * 5000)
    with pytest.raises(ValueError, match="at most"):
        hasher.hash("x" * 5000)
    with pytest.raises(ValueError, match="non-empty"):
        hasher.hash("")


@pytest.mark.parametrize("stored", ["", "plaintext", "$2b$12$bcrypthashvalue", "$argon2id$v=19$m"])
def test_corrupt_hashes_are_a_typed_error(stored: str) -> None:
    with pytest.raises(PasswordHashError):
        PasswordHasher(**FAST).verify(stored, "pw")


async def test_async_variants_run_off_the_event_loop() -> None:
    hasher = PasswordHasher(**FAST)
    stored = await hasher.ahash("pw-async")
    assert await hasher.averify(stored, "pw-async")
    assert await hasher.averify_and_update(stored, "nope") == (False, None)


def test_defaults_are_rfc_9106_low_memory() -> None:
    assert repr(PasswordHasher()) == "PasswordHasher(t=3, m=65536, p=4)"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("changeme", "default or placeholder"),
        ("please-change-me-before-going-live-ok", "default or placeholder"),
        ("SuperSecret123SuperSecret123SuperSecret", "default or placeholder"),
        ("Xy7-short", "too short"),
        ("ab" * 20, "too regular"),
        (STRONG, None),
    ],
)
def test_secret_weakness(value: str, reason: str | None) -> None:
    found = secret_weakness(value)
    assert found == reason if reason is None else reason in (found or "")


def test_production_refuses_missing_default_and_weak_secrets() -> None:
    settings = load_settings(
        env="production",
        encryption_keys="k1:" + "A" * 43,
        database_url="postgresql://postgres:postgres@db/lms",
        trusted_proxies=["0.0.0.0/0"],
    )
    with pytest.raises(InsecureSettingsError) as caught:
        create_service("courses", "1.0.0", settings=settings)
    problems = dict(caught.value.problems)
    assert set(problems) == {
        "LMS_SECRET_KEY",
        "LMS_ENCRYPTION_KEYS",
        "LMS_DATABASE_URL",
        "LMS_TRUSTED_PROXIES",
        "LMS_RATELIMIT_URL",
        "LMS_ALLOWED_HOSTS",
    }
    assert "in-memory rate limits" in problems["LMS_RATELIMIT_URL"]
    assert problems["LMS_SECRET_KEY"] == "is required in production but not set"
    assert problems["LMS_DATABASE_URL"] == "has a default password"
    message = str(caught.value)
    assert message.startswith("insecure settings, refusing to start in production:")
    assert "postgres:postgres" not in message
    assert isinstance(caught.value, SettingsError)


def test_production_starts_with_strong_secrets() -> None:
    settings = load_settings(
        env="production",
        secret_key=STRONG,
        encryption_keys=new_key_spec("2026-01"),
        database_url="postgresql://lms:Vq3-k9Zt-Lm2x-Pw8@db/lms",
        ratelimit_url="redis://ratelimit.internal:6379/0",
        allowed_hosts=["courses.example.org"],
    )
    create_service("courses", "1.0.0", settings=settings)
    assert insecure_settings(settings) == []


def test_weak_secret_key_is_named_without_its_value() -> None:
    settings = load_settings(
        env="production",
        secret_key="changeme",
        ratelimit_url="redis://ratelimit.internal/0",
        allowed_hosts=["*.example.org"],
    )
    with pytest.raises(InsecureSettingsError) as caught:
        check_production_settings(settings)
    assert caught.value.problems == [("LMS_SECRET_KEY", "is a well-known default or placeholder")]
    assert "changeme" not in str(caught.value)


def test_other_environments_are_not_blocked() -> None:
    create_service("courses", "1.0.0", settings=load_settings(env="development"))
    assert [variable for variable, _ in insecure_settings(load_settings())] == [
        "LMS_SECRET_KEY",
        "LMS_RATELIMIT_URL",
        "LMS_ALLOWED_HOSTS",
    ]


def test_redactor_masks_secrets_and_pii_at_any_depth() -> None:
    redactor = Redactor()
    event = {
        "event": "user updated",
        "user_id": "u-1",
        "password": "hunter2",
        "Authorization": "Bearer abc.def.ghi",
        "profile": {"email": "ann@example.org", "Phone-Number": "555", "roles": ["student"]},
        "items": [{"api_key": "k"}, {"db_password": "p", "ok": 1}],
        "dsn": "postgresql://lms:pw@db/lms",
        "note": "retrying with Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig now",
        "empty_token": None,
    }
    out = redactor.redact(event)
    assert out == {
        "event": "user updated",
        "user_id": "u-1",
        "password": "**********",
        "Authorization": "**********",
        "profile": {"email": "**********", "Phone-Number": "**********", "roles": ["student"]},
        "items": [{"api_key": "**********"}, {"db_password": "**********", "ok": 1}],
        "dsn": "postgresql://lms:***@db/lms",
        "note": "retrying with Bearer ********** now",
        "empty_token": None,
    }
    assert event["password"] == "hunter2"  # the input is not modified


def test_redactor_as_a_structlog_processor() -> None:
    capture = structlog.testing.LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[Redactor(), capture])
    try:
        structlog.get_logger().info("login", email="ann@example.org", password="pw", n=1)
    finally:
        structlog.configure(**old)
    [line] = capture.entries
    assert line["email"] == "**********"
    assert line["password"] == "**********"
    assert line["n"] == 1


def test_settings_dump_hides_every_secret() -> None:
    settings = load_settings(
        secret_key=STRONG,
        encryption_keys=new_key_spec("k"),
        key_encryption_key=new_key_spec("kek"),
        ratelimit_url="redis://:redispass@cache:6379/0",
    )
    dumped = str(settings.redacted())
    for secret in (STRONG, "redispass"):
        assert secret not in dumped
    assert settings.redacted()["encryption_keys"] == "**********"
    assert settings.redacted()["key_encryption_key"] == "**********"
    assert "k:" not in str(settings.redacted()["encryption_keys"])


class Signup(BaseModel):
    email: str
    password: str
    age: int


async def test_problem_responses_do_not_echo_secrets(make_service: Callable[..., Service]) -> None:
    service = make_service()

    @service.router.post("/v1/signup")
    async def signup(body: Signup) -> dict[str, Any]:
        return {}

    async with service_client(service) as client:
        response = await client.post(
            "/v1/signup",
            json={"email": "ann@example.org", "password": "hunter2-secret", "age": "old"},
        )
    assert response.status_code == 422
    assert "hunter2-secret" not in response.text
    assert "ann@example.org" not in response.text
