"""``lms-shared events``: schema export and the dead-letter queue of a real service module.

The service under test is a module written into the test's folder (the
working directory): SQLite database and embedded event log under
``.lms/``, dead letters in its database. The letters are put there by a
second process's worth of code (a store on the same file), as a running
service would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from lms_shared.cli import app
from lms_shared.cli._events import parse_moment
from lms_shared.events import DeadLetter, Message
from lms_shared.events.sql import SqlDeadLetterStore, create_event_tables
from lms_shared.redaction import Redactor

runner = CliRunner()

MODULE = '''
from lms_shared import create_service
from lms_shared.events import Event


class Thing(Event, type="lms.cli.thing", version=2):
    """Something happened."""

    n: int


class Other(Event, type="lms.cli.other"):
    label: str


service = create_service("clisvc", "1.2.3")
service.events.publishes(Thing)
service.events.use_database(service.db)


@service.events.subscribe(Thing, Other, group="workers")
async def handle(event: Thing | Other) -> None:
    ...
'''


@pytest.fixture
def service_module(tmp_path: Path) -> str:
    name = f"cli_service_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    return name


def letter(type: str, group: str, *, minutes_ago: int, data: bytes = b'{"n": 1}') -> DeadLetter:
    message = Message(
        {
            "id": uuid.uuid4().hex,
            "source": "/clisvc",
            "specversion": "1.0",
            "type": type,
            "datacontenttype": "application/json",
            "schemaversion": "2",
        },
        data,
    )
    return DeadLetter.create(
        message,
        group=group,
        handler="cli_service.handle",
        reason="handler-failed",
        error="RuntimeError: the index is down\n  at handler.py:3 in handle",
        attempts=5,
        now=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        redactor=Redactor(),
    )


def store_letters(tmp_path: Path, letters: list[DeadLetter]) -> None:
    async def go() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / '.lms' / 'clisvc.sqlite3'}")
        try:
            await create_event_tables(engine)
            store = SqlDeadLetterStore(engine)
            for item in letters:
                await store.add(item)
        finally:
            await engine.dispose()

    (tmp_path / ".lms").mkdir(exist_ok=True)
    asyncio.run(go())


def test_parse_moment_takes_iso_times_and_durations_ago() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert parse_moment("30m", now=now) == now - timedelta(minutes=30)
    assert parse_moment("2d", now=now) == now - timedelta(days=2)
    assert parse_moment("2026-04-30T10:00:00Z", now=now) == datetime(2026, 4, 30, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_moment("2026-04-30T10:00:00", now=now)
    with pytest.raises(ValueError, match="neither"):
        parse_moment("yesterday", now=now)


def test_schema_exports_json_schemas_and_asyncapi(service_module: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["events", "schema", "-s", service_module])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "clisvc", "version": "1.2.3"}
    assert set(document["operations"]) == {
        "send.lms.cli.thing",
        "receive.lms.cli.thing",
        "receive.lms.cli.other",
    }

    out = tmp_path / "export"
    result = runner.invoke(app, ["events", "schema", "-s", service_module, str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "schemas").iterdir()) == [
        "lms.cli.other.json",
        "lms.cli.thing.json",
    ]
    thing = json.loads((out / "schemas" / "lms.cli.thing.json").read_text())
    assert thing["x-schema-name"] == "lms.cli.thing"
    assert thing["x-schema-version"] == 2
    assert json.loads((out / "asyncapi.json").read_text()) == document
    # the compatibility checker reads the export as it reads the DTOs'
    check = runner.invoke(app, ["schema", "check", str(out / "schemas"), str(out / "schemas")])
    assert check.exit_code == 0, check.output
    assert "0 breaking change(s)" in check.output


def test_dlq_list_show_and_filters(service_module: str, tmp_path: Path) -> None:
    old = letter("lms.cli.thing", "workers", minutes_ago=180)
    new = letter("lms.cli.other", "workers", minutes_ago=5, data=b"\xff binary")
    store_letters(tmp_path, [old, new])

    result = runner.invoke(app, ["events", "dlq", "list", "-s", service_module, "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["total"] == 2
    assert [x["id"] for x in listing["items"]] == [old.id, new.id]

    recent = runner.invoke(
        app, ["events", "dlq", "list", "-s", service_module, "--since", "1h", "--json"]
    )
    assert [x["id"] for x in json.loads(recent.stdout)["items"]] == [new.id]
    typed = runner.invoke(
        app, ["events", "dlq", "list", "-s", service_module, "--type", "lms.cli.thing", "--json"]
    )
    assert [x["id"] for x in json.loads(typed.stdout)["items"]] == [old.id]

    table = runner.invoke(app, ["events", "dlq", "list", "-s", service_module])
    assert table.exit_code == 0
    assert old.id in table.output
    assert "2 of 2" in table.output

    shown = runner.invoke(app, ["events", "dlq", "show", "-s", service_module, new.id])
    assert shown.exit_code == 0, shown.output
    assert "RuntimeError: the index is down" in shown.output
    assert "binary" in shown.output
    as_json = runner.invoke(app, ["events", "dlq", "show", "-s", service_module, old.id, "--json"])
    assert json.loads(as_json.stdout)["attributes"]["schemaversion"] == "2"
    missing = runner.invoke(app, ["events", "dlq", "show", "-s", service_module, "nope"])
    assert missing.exit_code == 1

    bad = runner.invoke(app, ["events", "dlq", "list", "-s", service_module, "--since", "soon"])
    assert bad.exit_code == 2
    assert "neither" in bad.output


def test_dlq_replay_dry_run_then_for_real(service_module: str, tmp_path: Path) -> None:
    letters = [letter("lms.cli.thing", "workers", minutes_ago=m) for m in (30, 20, 10)]
    store_letters(tmp_path, letters)

    dry = runner.invoke(app, ["events", "dlq", "replay", "-s", service_module, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would replay 3" in dry.output

    done = runner.invoke(
        app, ["events", "dlq", "replay", "-s", service_module, "--limit", "2", "--rate", "100"]
    )
    assert done.exit_code == 0, done.output
    assert "replayed 2 dead letter(s) through sqlite" in done.output
    left = json.loads(
        runner.invoke(app, ["events", "dlq", "list", "-s", service_module, "--json"]).stdout
    )
    assert [x["id"] for x in left["items"]] == [letters[2].id]  # the oldest went first
    assert (tmp_path / ".lms" / "events.sqlite3").exists()  # through the embedded log


def test_dlq_purge_needs_a_filter_and_confirmation(service_module: str, tmp_path: Path) -> None:
    keep = letter("lms.cli.thing", "workers", minutes_ago=1)
    drop = letter("lms.cli.other", "workers", minutes_ago=1)
    store_letters(tmp_path, [keep, drop])

    refused = runner.invoke(app, ["events", "dlq", "purge", "-s", service_module])
    assert refused.exit_code == 2
    assert "--all" in refused.output
    declined = runner.invoke(
        app,
        ["events", "dlq", "purge", "-s", service_module, "--type", "lms.cli.other"],
        input="n\n",
    )
    assert declined.exit_code == 1
    purged = runner.invoke(
        app, ["events", "dlq", "purge", "-s", service_module, "--type", "lms.cli.other", "--yes"]
    )
    assert purged.exit_code == 0
    assert "purged 1" in purged.output
    left = json.loads(
        runner.invoke(app, ["events", "dlq", "list", "-s", service_module, "--json"]).stdout
    )
    assert [x["id"] for x in left["items"]] == [keep.id]
    everything = runner.invoke(app, ["events", "dlq", "purge", "-s", service_module, "--all", "-y"])
    assert everything.exit_code == 0
    assert "purged 1" in everything.output


def test_a_target_that_is_no_service_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["events", "dlq", "list", "-s", "no_such_module_here"])
    assert result.exit_code == 2
    assert "cannot import" in result.output
