"""``rate_limited`` where users put it: a parameter default or ``dependencies=[...]``.

Either way it counts the caller's principal (it verifies the credentials
itself when no ``require`` ran first), counts anonymous callers by
address, and ``Depends(rate_limited(...))`` fails at declaration with an
error naming the right use.
"""

from __future__ import annotations

import pytest
from fastapi import Depends

from lms_shared import Service, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.http import rate_limited, require
from lms_shared.ratelimit import Decision
from lms_shared.testing import FakeIdentity, service_client


def posting_service() -> tuple[Service, FakeIdentity]:
    service = create_service("discussions", "1.0.0", settings=load_settings())

    # in dependencies=[...]: FastAPI runs it before the endpoint's require(...)
    @service.router.post("/v1/threads", dependencies=[rate_limited("2/minute", name="threads")])
    async def thread(who: Principal = require()) -> dict[str, str]:
        return {"by": who.subject}

    # a parameter default declared *before* require(...)
    @service.router.post("/v1/posts")
    async def post(
        _: Decision = rate_limited("2/minute", name="posts"),
        who: Principal = require(),
    ) -> dict[str, str]:
        return {"by": who.subject}

    # on a route without require: still per principal when credentials come
    @service.router.get("/v1/search", dependencies=[rate_limited("2/minute", name="search")])
    async def search() -> dict[str, bool]:
        return {"ok": True}

    identity = FakeIdentity(clock=service.clock)
    identity.install(service)
    return service, identity


@pytest.mark.parametrize("path", ["/v1/threads", "/v1/posts"])
async def test_each_principal_has_its_own_quota(path: str) -> None:
    service, identity = posting_service()
    ada = identity.headers("ada", roles=["student"])
    bo = identity.headers("bo", roles=["student"])
    async with service_client(service) as client:
        ada_codes = [(await client.post(path, headers=ada)).status_code for _ in range(3)]
        bo_codes = [(await client.post(path, headers=bo)).status_code for _ in range(2)]
        body = (await client.post(path, headers=identity.headers("cy"))).json()
    # one client address for all three: an address key would have refused bo
    assert ada_codes == [200, 200, 429]
    assert bo_codes == [200, 200]
    assert body == {"by": "cy"}


async def test_a_route_without_require_counts_the_principal_too() -> None:
    service, identity = posting_service()
    async with service_client(service) as client:
        ada = [
            (await client.get("/v1/search", headers=identity.headers("ada"))).status_code
            for _ in range(3)
        ]
        anonymous = [(await client.get("/v1/search")).status_code for _ in range(3)]
    assert ada == [200, 200, 429]
    assert anonymous == [200, 200, 429]  # by address, a quota of its own


async def test_bad_credentials_are_counted_by_address_and_still_refused() -> None:
    service, _ = posting_service()
    forged = {"authorization": "Bearer not.a.token"}
    async with service_client(service) as client:
        codes = [(await client.post("/v1/threads", headers=forged)).status_code for _ in range(3)]
        problem = (await client.post("/v1/threads", headers=forged)).json()
    assert codes == [401, 401, 429]  # forged tokens share the address's quota
    assert problem["status"] == 429


async def test_the_principal_is_verified_once_per_request() -> None:
    service, identity = posting_service()
    calls = 0
    authenticate = service.auth.authenticator.authenticate

    async def counting(headers: object) -> Principal:
        nonlocal calls
        calls += 1
        return await authenticate(headers)  # type: ignore[arg-type]

    service.auth.authenticator.authenticate = counting  # type: ignore[method-assign]
    async with service_client(service) as client:
        response = await client.post("/v1/threads", headers=identity.headers("ada"))
    assert response.status_code == 200
    assert calls <= 1  # require reused what rate_limited verified


def test_depends_around_rate_limited_fails_at_declaration_naming_the_right_use() -> None:
    service = create_service("discussions", "1.0.0", settings=load_settings())
    with pytest.raises(TypeError, match=r"_: Decision = rate_limited\(\.\.\.\)"):

        @service.router.post("/v1/wrong")
        async def wrong(_: Decision = Depends(rate_limited("1/minute"))) -> None:
            return None

    with pytest.raises(TypeError, match=r"dependencies=\[rate_limited\(\.\.\.\)\]"):
        service.router.add_api_route(
            "/v1/wrong-too", lambda: None, dependencies=[Depends(rate_limited("1/minute"))]
        )
