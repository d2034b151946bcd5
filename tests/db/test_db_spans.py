"""Database spans: each statement a CLIENT span, a child of the request's SERVER span."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from lms_shared import create_service, load_settings
from lms_shared.testing import record_spans, service_client


async def test_statements_are_spans_in_the_requests_trace_without_values(tmp_path: Path) -> None:
    service = create_service(
        "courses", "1.0.0", settings=load_settings(state_dir=str(tmp_path), env="test")
    )
    db = service.db

    @service.router.get("/v1/count")
    async def count() -> dict[str, int]:
        async with db.transaction() as tx:
            await tx.execute(text("CREATE TABLE IF NOT EXISTS t (secret TEXT)"))
            await tx.execute(text("INSERT INTO t VALUES (:v)"), {"v": "hunter2"})
            found = await tx.scalar(text("SELECT count(*) FROM t"))
        return {"count": int(found or 0)}

    @service.router.get("/v1/broken")
    async def broken() -> dict[str, bool]:
        async with db.transaction() as tx:
            await tx.execute(text("SELECT * FROM no_such_table"))
        return {"ok": True}

    spans = record_spans(service)
    async with service_client(service) as client:
        assert (await client.get("/v1/count")).json() == {"count": 1}
        assert (await client.get("/v1/broken")).status_code == 500
    [server] = spans.named("GET /v1/count")
    queries = [s for s in spans.raw() if s.name.startswith(("INSERT", "SELECT", "CREATE"))]
    mine = [s for s in queries if f"{s.context.trace_id:032x}" == server.trace_id]
    assert [s.name.split()[0] for s in mine] == ["CREATE", "INSERT", "SELECT"]
    for span in mine:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == server.span_id
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == "sqlite"
        assert "hunter2" not in str(dict(span.attributes))  # placeholders, never values
    insert = next(s for s in mine if s.name.startswith("INSERT"))
    assert insert.attributes is not None
    assert insert.attributes["db.query.text"] == "INSERT INTO t VALUES (?)"
    [failed] = [
        s for s in queries if "no_such_table" in str((s.attributes or {}).get("db.query.text"))
    ]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "OperationalError"
