"""The example platform's auth and security: logins, tokens, API keys, service tokens,
encrypted phone numbers, sanitised rich text and login rate limits."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from tests.test_demo import IDENTITY_URL, PASSWORD, bootstrap, log_in, platform_in_process

from examples.access import auth_settings, new_platform_secrets
from examples.courses.app import build_service as build_courses
from examples.enrollments.app import build_service as build_enrollments
from examples.identity.app import build_service as build_identity
from examples.identity.tables import UserRow
from lms_shared import load_settings
from lms_shared.auth import ApiKeys, JwksKeys, MemoryApiKeyStore, TokenVerifier, VerifierConfig
from lms_shared.clock import SystemClock
from lms_shared.models import ModelValidationError
from lms_shared.security import DecryptionError, Keyring, decrypt_field
from lms_shared.testing import FakeIdentity, ManualClock, service_client


@pytest.fixture(autouse=True)
def _migrate_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_DATABASE_MIGRATE_ON_START", "true")


async def test_bootstrap_once_then_password_logins_give_tokens_verified_by_the_jwks() -> None:
    identity = build_identity(
        settings=load_settings(**auth_settings("identity", IDENTITY_URL, new_platform_secrets()))
    )
    async with service_client(identity) as client:
        org, admin = await bootstrap(client)
        again = await client.post(
            "/v1/bootstrap",
            json={
                "organization": {"name": "Other", "slug": "other"},
                "email": "x@other.edu",
                "name": "X",
                "password": PASSWORD,
            },
        )
        made = await client.post(
            "/v1/users",
            json={
                "email": "Ada@NW.edu",
                "name": "Ada",
                "role": "student",
                "organization_id": org["id"],
                "password": PASSWORD,
            },
            headers=admin,
        )
        wrong = await client.post("/v1/login", json={"email": "ada@nw.edu", "password": "nope"})
        unknown = await client.post("/v1/login", json={"email": "who@nw.edu", "password": PASSWORD})
        token = (await log_in(client, "ada@nw.edu"))["authorization"].removeprefix("Bearer ")
        anonymous = await client.get("/v1/users")
        as_student = await client.get("/v1/users", headers={"authorization": f"Bearer {token}"})
        async with identity.db.transaction(read_only=True) as tx:
            stored = await tx.scalar(
                select(UserRow.password_hash).where(UserRow.email == "ada@nw.edu")
            )
        keys = JwksKeys(
            f"{IDENTITY_URL}/.well-known/jwks.json",
            algorithms={"ES256"},
            clock=SystemClock(),
            transport=httpx.ASGITransport(app=identity.app),
        )
        await keys.start()
        try:
            config = VerifierConfig(issuer=IDENTITY_URL, audiences=("grading",))
            principal = await TokenVerifier(config, keys, clock=SystemClock()).verify(token)
        finally:
            await keys.stop()

    assert (again.status_code, again.json()["code"]) == (409, "already-bootstrapped")
    assert made.status_code == 201
    assert "password" not in made.json()
    assert "password_hash" not in made.json()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    for refused in (wrong, unknown):  # the same answer whether the address exists or not
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid-login")
        assert refused.json()["detail"] == "the email or the password is wrong"
    assert principal.subject == made.json()["id"]
    assert principal.roles == {"student"}
    assert principal.tenant == org["id"]
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")
    assert (as_student.status_code, as_student.json()["code"]) == (403, "insufficient-permission")


async def test_an_api_key_reads_within_its_scope_only() -> None:
    async with platform_in_process() as c:
        _, admin = await bootstrap(c["identity"])
        created = await c["identity"].post(
            "/v1/api-keys",
            json={"name": "roster", "roles": ["admin"], "scopes": ["user:read"]},
            headers=admin,
        )
        key = {"x-api-key": created.json()["secret"]}
        read = await c["identity"].get("/v1/users", headers=key)
        write = await c["identity"].post(
            "/v1/organizations", json={"name": "R", "slug": "rogue"}, headers=key
        )
        forged = await c["identity"].get(
            "/v1/users", headers={"x-api-key": created.json()["secret"][:-4] + "AAAA"}
        )
        elsewhere = await c["courses"].get("/v1/courses", headers=key)  # keys live in identity

    assert created.status_code == 201
    assert created.json()["secret"].startswith(f"lms_{created.json()['id']}_")
    assert read.status_code == 200
    assert [u["email"] for u in read.json()["items"]] == ["root@nw.edu"]
    assert (write.status_code, write.json()["code"]) == (403, "insufficient-permission")
    assert (forged.status_code, forged.json()["code"]) == (401, "invalid-token")
    assert elsewhere.status_code == 401


async def test_services_call_each_other_with_service_tokens() -> None:
    """Enrollments asks identity with a service token; without credentials identity says 401."""
    platform = new_platform_secrets()
    identity = build_identity(
        settings=load_settings(**auth_settings("identity", IDENTITY_URL, platform))
    )
    to_identity = httpx.ASGITransport(app=identity.app)
    settings: dict[str, Any] = auth_settings("enrollments", IDENTITY_URL, platform)
    anonymous_settings = {k: v for k, v in settings.items() if k != "auth_client_secret"}

    async def enroll(enrollments_settings: dict[str, Any]) -> httpx.Response:
        enrollments = build_enrollments(
            settings=load_settings(**enrollments_settings),
            transports={"identity": to_identity, "courses": to_identity},
        )
        async with service_client(enrollments, headers=admin) as client:
            return await client.post(
                "/v1/enrollments",
                json={"course_id": org["id"], "user_id": org["id"]},  # no such user
            )

    async with service_client(identity) as identity_client:
        org, admin = await bootstrap(identity_client)
        with_token = await enroll(settings)
        without = await enroll(anonymous_settings)

    # identity verified enrollments' service token and answered: no such user
    assert (with_token.status_code, with_token.json()["code"]) == (404, "not-found")
    assert with_token.json()["detail"] == f"user {org['id']} does not exist"
    # without a client secret enrollments has no token: identity answers 401, a 503 here
    assert (without.status_code, without.json()["code"]) == (503, "service-unavailable")
    assert without.json()["detail"] == "the identity service answered 401"


# --- security: encrypted phone numbers, sanitised descriptions, login rate limits --------------


async def test_phone_numbers_are_stored_encrypted_and_bound_to_their_row() -> None:
    platform = new_platform_secrets()
    identity = build_identity(
        settings=load_settings(**auth_settings("identity", IDENTITY_URL, platform))
    )
    phone = "+442079460001"
    async with service_client(identity) as client:
        org, admin = await bootstrap(client)
        made = await client.post(
            "/v1/users",
            json={
                "email": "ada@nw.edu",
                "name": "Ada",
                "role": "student",
                "organization_id": org["id"],
                "password": PASSWORD,
                "phone": phone,
            },
            headers=admin,
        )
        read = await client.get(f"/v1/users/{made.json()['id']}", headers=admin)
        async with identity.db.transaction(read_only=True) as tx:
            rows = (await tx.execute(select(UserRow.id, UserRow.phone_encrypted))).all()
    stored: dict[UUID, str | None] = {row.id: row.phone_encrypted for row in rows}
    ada = UUID(made.json()["id"])
    keyring = Keyring.parse(platform["encryption_keys"])

    assert made.status_code == 201
    assert read.json()["phone"] == phone  # decrypted for the API
    column = stored[ada]
    assert column is not None
    assert phone not in column
    assert phone[1:] not in column
    assert decrypt_field(keyring, column, table="users", column="phone", row_id=ada) == phone
    other = next(row_id for row_id in stored if row_id != ada)  # copied to another row: refused
    with pytest.raises(DecryptionError):
        decrypt_field(keyring, column, table="users", column="phone", row_id=other)


async def test_course_descriptions_are_sanitised() -> None:
    identity = FakeIdentity()
    courses = build_courses()
    identity.install(courses)
    headers = identity.headers("barbara", roles=["instructor"])
    async with service_client(courses, headers=headers) as client:
        made = await client.post(
            "/v1/courses",
            json={
                "code": "CS101",
                "title": "Distributed systems",
                "description": "<b>Intro</b><img src=x onerror=alert(1)><script>x()</script>",
                "organization_id": str(uuid4()),
                "instructor_id": str(uuid4()),
            },
        )
        read = await client.get(f"/v1/courses/{made.json()['id']}")

    assert made.status_code == 201
    assert read.json()["description"] == '<b>Intro</b><img src="x">'


async def test_logins_are_rate_limited_per_address_and_per_account() -> None:
    identity = build_identity(
        settings=load_settings(**auth_settings("identity", IDENTITY_URL, new_platform_secrets()))
    )
    async with service_client(identity) as client:
        await bootstrap(client)  # one login
        account = [
            await client.post("/v1/login", json={"email": "root@nw.edu", "password": "guess"})
            for _ in range(5)  # the sixth attempt for this account
        ]
        addresses: list[httpx.Response] = []
        while len(addresses) < 40 and (not addresses or addresses[-1].status_code == 401):
            email = f"u{len(addresses)}@nw.edu"  # new accounts: only the address is counted
            addresses.append(
                await client.post("/v1/login", json={"email": email, "password": "guess"})
            )
        over = addresses.pop()

    assert [r.status_code for r in account] == [401] * 4 + [429]
    assert account[-1].json()["violated-policies"] == ["login-account"]
    assert int(account[-1].headers["retry-after"]) > 0
    # 20 at once (the burst), plus what GCRA refilled meanwhile (one per 3 s): > 20 in all
    assert 20 - len(account) - 1 <= len(addresses) < 40 - 1
    assert {r.status_code for r in addresses} == {401}
    assert (over.status_code, over.json()["code"]) == (429, "rate-limited")
    assert over.json()["violated-policies"] == ["login"]
    assert int(over.headers["retry-after"]) > 0


async def test_malformed_api_key_scopes_are_a_422_naming_the_field() -> None:
    async with platform_in_process() as c:
        _, admin = await bootstrap(c["identity"])
        answers = [
            await c["identity"].post(
                "/v1/api-keys",
                json={"name": "roster", "roles": ["admin"], "scopes": scopes},
                headers=admin,
            )
            for scopes in ([""], ["user:read", "no colon"], ["a:b:c"])
        ]
    for answer, pointer in zip(answers, ["#/scopes/0", "#/scopes/1", "#/scopes/0"], strict=True):
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "validation-error"
        assert pointer in [e.get("pointer") for e in answer.json()["errors"]]


async def test_api_keys_refuse_malformed_scopes_in_code_too() -> None:
    keys = ApiKeys(MemoryApiKeyStore(), clock=ManualClock())
    with pytest.raises(ModelValidationError) as raised:
        await keys.create("k", owner="u1", roles=["admin"], scopes=["ok:read", ""])
    assert [e["pointer"] for e in raised.value.errors] == ["#/scopes/1"]
