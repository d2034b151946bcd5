"""The example of docs/models.md runs, and does what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lms_shared import Service
from lms_shared.models import MERGE_PATCH_CONTENT_TYPE
from lms_shared.testing import service_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def example() -> Service:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    [code] = [block for block in blocks if "create_service(" in block]
    namespace: dict[str, Any] = {"__name__": "docs_models_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    service = namespace["service"]
    assert isinstance(service, Service)
    return service


async def test_the_documented_service_works() -> None:
    service = example()
    body = {
        "organization_id": "0b7c2a4e-5d2f-4c1b-9a53-6f0e1d2c3b4a",
        "slug": "stats",
        "title": "Statistics",
    }
    async with service_client(service) as client:
        key = {"Idempotency-Key": "a7f4c2de-0d4e-4b6e-9a0e-6f1c2b3d4e5f"}
        created = await client.post("/v1/courses", json=body, headers=key)
        retried = await client.post("/v1/courses", json=body, headers=key)
        assert created.status_code == retried.status_code == 201
        assert retried.json() == created.json()
        url = f"/v1/courses/{created.json()['id']}"
        read = await client.get(url, params={"fields": "title,status"})
        assert read.json() == {"id": created.json()["id"], "title": "Statistics", "status": "draft"}
        patched = await client.patch(
            url,
            content=b'{"title": "Statistics I"}',
            headers={"If-Match": read.headers["etag"], "content-type": MERGE_PATCH_CONTENT_TYPE},
        )
        assert (patched.status_code, patched.headers["etag"]) == (200, '"2"')
        stale = await client.patch(url, json={"title": "x"}, headers={"If-Match": '"1"'})
        assert stale.status_code == 412
