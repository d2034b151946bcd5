"""HEAD wherever GET works; a 405's Allow lists every method of the path (RFC 9110)."""

from __future__ import annotations

from lms_shared import Service, create_service, load_settings
from lms_shared.testing import service_client


def build() -> Service:
    service = create_service("probe", "1.0.0", settings=load_settings())
    v1 = service.api(1)

    @v1.get("/organizations")
    async def list_organizations() -> dict[str, list[int]]:
        return {"items": [1, 2, 3]}

    @v1.post("/organizations", status_code=201)
    async def create_organization() -> dict[str, int]:
        return {"id": 4}

    @v1.delete("/organizations/{org_id}", status_code=204)
    async def delete_organization(org_id: int) -> None:
        return None

    @v1.post("/login")
    async def login() -> dict[str, str]:
        return {"token": "t"}

    service.include(v1)
    return service


async def test_head_answers_like_get_without_the_body() -> None:
    async with service_client(build()) as client:
        get = await client.get("/v1/organizations")
        head = await client.head("/v1/organizations")
        ready = await client.head("/health/ready")
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]
    assert ready.status_code in {200, 503}
    assert ready.content == b""


async def test_allow_lists_every_method_of_the_path() -> None:
    async with service_client(build()) as client:
        put = await client.put("/v1/organizations")
        head_on_post_only = await client.head("/v1/login")
        get_item = await client.get("/v1/organizations/7")
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, HEAD, POST"
    assert put.headers["content-type"] == "application/problem+json"
    assert head_on_post_only.status_code == 405
    assert head_on_post_only.headers["allow"] == "POST"
    assert get_item.status_code == 405
    assert get_item.headers["allow"] == "DELETE"
