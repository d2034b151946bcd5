"""RateLimit fields on every response of a limited route (issue 10, item 9).

draft-ietf-httpapi-ratelimit-headers (-10): ``RateLimit-Policy`` lists the
quota policies, ``RateLimit`` the standing; a server may send them on any
status. A route that counts a request against a quota says so on the 401
and the 422 it answers too, for every policy the request met (middleware,
dependency, a check in code), and the 429 is the IANA ``quota-exceeded``
problem with ``violated-policies`` and ``Retry-After``.
"""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel

from lms_shared import Service, create_service, errors, load_settings
from lms_shared.errors import ProblemError
from lms_shared.http import RateCheck, exempt, limit, rate_check, rate_limited
from lms_shared.ratelimit import Decision, Quota, Rate
from lms_shared.testing import ManualClock, service_client

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
ACCOUNTS = rate_check("3/minute", name="login-account")
SEARCHES = rate_limited("4/minute", name="search")
EXPORTS = Quota("export", Rate(2, 60))
UNNAMED = rate_limited("1/minute")
# one SF list item: "name" then parameters (RFC 9651 sf-string, ;key=integer)
_ITEM = re.compile(r'"[A-Za-z0-9._-]+"(;[a-z]+=\d+)+')


class Credentials(BaseModel):
    email: str
    password: str


def build(clock: ManualClock | None = None) -> Service:
    settings = load_settings(ratelimit_default="10/minute")
    service = create_service("identity", "1.0.0", settings=settings, clock=clock or ManualClock())
    v1 = service.api(1)

    @v1.post("/login")
    @limit("5/minute", name="login")
    async def login(body: Credentials, accounts: RateCheck = ACCOUNTS) -> dict[str, str]:
        await accounts.check(f"account:{body.email}")
        if body.password != "right":
            raise ProblemError("wrong password", code=errors.UNAUTHORIZED)
        return {"token": "t"}

    @v1.get("/search")
    async def search(q: int, _: Decision = SEARCHES) -> dict[str, int]:
        if q == 404:
            raise ProblemError("nothing", code=errors.NOT_FOUND)
        return {"q": q}

    @v1.post("/exports")
    @exempt
    async def export() -> dict[str, bool]:
        await service.rate_limits.check("everyone", EXPORTS)  # a check made in code
        return {"ok": True}

    service.include(v1)
    return service


def items(response: httpx.Response, field: str) -> list[str]:
    """The list items of a field, checking each is a well-formed SF item."""
    assert len(response.headers.get_list(field)) == 1, f"{field} sent twice"
    values = [v.strip() for v in response.headers[field].split(",")]
    for value in values:
        assert _ITEM.fullmatch(value), value
    return values


async def test_401_and_422_of_a_limited_route_carry_every_policy() -> None:
    async with service_client(build()) as client:
        ok = await client.post("/v1/login", json={"email": "a@x", "password": "right"})
        wrong = await client.post("/v1/login", json={"email": "a@x", "password": "guess"})
        invalid = await client.post("/v1/login", json={"email": "a@x"})
    policy = ['"login";q=5;w=60', '"login-account";q=3;w=60']
    assert ok.status_code == 200
    assert items(ok, "ratelimit-policy") == policy
    assert items(ok, "ratelimit") == ['"login";r=4;t=12', '"login-account";r=2;t=20']
    assert wrong.status_code == 401
    assert items(wrong, "ratelimit-policy") == policy
    assert items(wrong, "ratelimit") == ['"login";r=3;t=12', '"login-account";r=1;t=20']
    # the body did not validate: the handler never checked the account, yet the policy
    # is advertised (the dependency ran first) and the address quota was used
    assert invalid.status_code == 422
    assert items(invalid, "ratelimit-policy") == policy
    assert items(invalid, "ratelimit") == ['"login";r=2;t=12']


async def test_429_from_a_check_is_the_iana_quota_exceeded_problem() -> None:
    async with service_client(build()) as client:
        for _ in range(3):
            await client.post("/v1/login", json={"email": "b@x", "password": "guess"})
        refused = await client.post("/v1/login", json={"email": "b@x", "password": "guess"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == QUOTA_EXCEEDED
    assert problem["title"] == "Quota exceeded"
    assert problem["code"] == "rate-limited"
    assert problem["violated-policies"] == ["login-account"]
    assert refused.headers["retry-after"] == "20"
    # both policies, one field each (the problem's own fields are replaced, not repeated)
    assert items(refused, "ratelimit-policy") == ['"login";q=5;w=60', '"login-account";q=3;w=60']
    assert items(refused, "ratelimit") == ['"login";r=1;t=12', '"login-account";r=0;t=20']


async def test_429_from_the_middleware_is_the_same_problem() -> None:
    async with service_client(build()) as client:
        for _ in range(5):
            await client.post("/v1/login", json={})
        refused = await client.post("/v1/login", json={})
    assert refused.status_code == 429
    assert refused.json()["type"] == QUOTA_EXCEEDED
    assert refused.json()["violated-policies"] == ["login"]
    assert refused.headers["retry-after"] == "12"
    assert items(refused, "ratelimit") == ['"login";r=0;t=12']
    assert items(refused, "ratelimit-policy") == ['"login";q=5;w=60']


async def test_dependency_and_default_policies_meet_on_every_status() -> None:
    async with service_client(build()) as client:
        found = await client.get("/v1/search", params={"q": 1})
        missing = await client.get("/v1/search", params={"q": 404})
        invalid = await client.get("/v1/search", params={"q": "x"})
    expected_policy = ['"default";q=10;w=60', '"search";q=4;w=60']
    for response, status in ((found, 200), (missing, 404), (invalid, 422)):
        assert response.status_code == status
        assert items(response, "ratelimit-policy") == expected_policy, status
    assert items(missing, "ratelimit") == ['"default";r=8;t=6', '"search";r=2;t=15']


async def test_checks_made_in_code_are_reported() -> None:
    async with service_client(build()) as client:
        first = await client.post("/v1/exports")
        await client.post("/v1/exports")
        refused = await client.post("/v1/exports")
    assert items(first, "ratelimit") == ['"export";r=1;t=30']
    assert items(first, "ratelimit-policy") == ['"export";q=2;w=60']
    assert refused.status_code == 429
    assert refused.json()["violated-policies"] == ["export"]


async def test_t_is_the_time_until_more_quota_not_until_whole() -> None:
    """Draft -10 §4.1.2: "seconds until additional quota ... is made available"."""
    clock = ManualClock()
    async with service_client(build(clock)) as client:
        answers = [await client.post("/v1/exports") for _ in range(2)]
        await clock.advance(10)
        later = await client.post("/v1/exports")
    assert items(answers[0], "ratelimit") == ['"export";r=1;t=30']
    assert items(answers[1], "ratelimit") == ['"export";r=0;t=30']  # not 60: one comes back in 30
    assert later.status_code == 429
    assert later.headers["retry-after"] == "20"
    assert items(later, "ratelimit") == ['"export";r=0;t=20']


async def test_unnamed_dependencies_never_share_the_default_policy() -> None:
    settings = load_settings(ratelimit_default="100/minute")
    service = create_service("courses", "1.0.0", settings=settings, clock=ManualClock())

    @service.router.get("/v1/tight")
    async def tight(_: Decision = UNNAMED) -> dict[str, bool]:
        return {"ok": True}

    async with service_client(service) as client:
        first = await client.get("/v1/tight")
        second = await client.get("/v1/tight")
    assert items(first, "ratelimit-policy") == ['"default";q=100;w=60', '"1-per-60s";q=1;w=60']
    assert second.status_code == 429
    assert second.json()["violated-policies"] == ["1-per-60s"]


async def test_health_probes_and_unlimited_routes_carry_no_fields() -> None:
    settings = load_settings(ratelimit_default=None)
    service = create_service("courses", "1.0.0", settings=settings, clock=ManualClock())

    @service.router.get("/v1/free")
    async def free() -> dict[str, bool]:
        return {"ok": True}

    async with service_client(service) as client:
        free_answer = await client.get("/v1/free")
        live = await client.get("/health/live")
    assert "ratelimit" not in free_answer.headers
    assert "ratelimit-policy" not in free_answer.headers
    assert "ratelimit" not in live.headers
