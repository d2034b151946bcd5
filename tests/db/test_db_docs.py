"""The end-to-end example of docs/database.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from lms_shared.testing import capture_logs, service_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "database.md"


def first_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return str(blocks[0])


async def test_the_end_to_end_example_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path / "state"))
    module = types.ModuleType("docs_database_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # SQLAlchemy resolves names there
    code = compile(first_example(), str(DOC), "exec", dont_inherit=True)
    exec(code, module.__dict__)
    service = module.service
    async with service.db.engine.begin() as conn:
        await conn.run_sync(module.Base.metadata.create_all)
    async with service_client(service) as client:
        acme, globex = {"x-tenant": "acme"}, {"x-tenant": "globex"}
        for n, title in enumerate(["Rust", "Go", "Rust in depth"], start=1):
            created = await client.post("/v1/courses", json={"id": n, "title": title}, headers=acme)
            assert created.status_code == 201, created.text
        await client.post("/v1/courses", json={"id": 9, "title": "Rust"}, headers=globex)
        page = await client.get(
            "/v1/courses", params={"title[contains]": "Rust", "sort": "title"}, headers=acme
        )
        assert [c["title"] for c in page.json()["items"]] == ["Rust", "Rust in depth"]
        theirs = await client.get("/v1/courses", headers=globex)
        assert [c["id"] for c in theirs.json()["items"]] == [9]
        bad = await client.get("/v1/courses", params={"owner": "x"}, headers=acme)
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid-filter"
        # the tables came from create_all, not from the example's migrations
        # folder (absent here): readiness says so instead of passing
        with capture_logs() as logs:
            database = (await client.get("/health/ready")).json()["checks"]["database"]
        assert database["status"] == "fail"
        (failed,) = logs.events("health check failed")
        assert "no migrations folder" in failed["error"]
    assert (tmp_path / "state" / "courses.sqlite3").exists()
