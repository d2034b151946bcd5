"""``lms-shared discovery list``, through typer's CliRunner (the sub-app alone)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.discovery.conftest import free_port
from typer.testing import CliRunner

from lms_shared.cli._discovery import age, discovery_app
from lms_shared.discovery import Instance, registry_from_url
from lms_shared.testing import ManualClock

runner = CliRunner()


def register_locally(state_dir: Path) -> None:
    """Two courses instances (one unhealthy) and one identity, registered an hour ago."""

    async def main() -> None:
        clock = ManualClock(datetime.now(UTC) - timedelta(hours=1))
        registry = registry_from_url(None, clock=clock, state_dir=state_dir)
        await registry.start()
        ttl = 7200.0  # outlives the hour the clock is behind
        await registry.register(Instance("courses", "c-1", "127.0.0.1", 8001, "1.4.0"), ttl=ttl)
        sick = await registry.register(Instance("courses", "c-2", "127.0.0.1", 8002), ttl=ttl)
        await sick.set_healthy(False)
        await registry.register(
            Instance("identity", "i-1", "127.0.0.1", 8000, zone="eu-1"), ttl=ttl
        )
        await registry.stop()  # the entries stay until they expire

    asyncio.run(main())


def test_list_shows_every_instance_with_health_and_age(tmp_path: Path) -> None:
    register_locally(Path(".lms"))
    result = runner.invoke(discovery_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["service"], r["id"], r["health"]) for r in rows] == [
        ("courses", "c-1", "healthy"),
        ("courses", "c-2", "unhealthy"),
        ("identity", "i-1", "healthy"),
    ]
    assert rows[0]["version"] == "1.4.0"
    assert rows[2]["zone"] == "eu-1"
    assert rows[0]["endpoint"] == "127.0.0.1:8001"
    assert all(r["age"] in {"59m", "1h"} for r in rows)
    table = runner.invoke(discovery_app, ["list", "identity"])
    assert table.exit_code == 0
    assert "i-1" in table.stdout
    assert "c-1" not in table.stdout
    assert "local at" in table.stdout


def test_list_of_a_static_url(tmp_path: Path) -> None:
    result = runner.invoke(
        discovery_app, ["list", "--url", "static://courses=127.0.0.1:8001,127.0.0.2:8001"]
    )
    assert result.exit_code == 0, result.output
    assert "127.0.0.2:8001" in result.stdout
    assert "static at settings" in result.stdout


def test_list_without_a_registry_file_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(discovery_app, ["list"])
    assert result.exit_code == 0
    assert "no instances" in result.stdout
    assert not Path(".lms").exists()


def test_a_bad_url_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_DISCOVERY_URL", "zookeeper://127.0.0.1:2181")
    result = runner.invoke(discovery_app, ["list"])
    assert result.exit_code == 2
    assert "LMS_DISCOVERY_URL" in result.stderr
    assert "zookeeper" in result.stderr


def test_an_unreachable_registry_exits_1() -> None:
    result = runner.invoke(
        discovery_app, ["list", "--url", f"etcd://127.0.0.1:{free_port()}?timeout=1"]
    )
    assert result.exit_code == 1
    assert "registry unavailable" in result.stderr


def test_ages_read_like_people_say_them() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert age(None, now) == "-"
    assert age(now - timedelta(seconds=42), now) == "42s"
    assert age(now - timedelta(minutes=5, seconds=3), now) == "5m"
    assert age(now - timedelta(hours=3), now) == "3h"
    assert age(now - timedelta(days=2, hours=1), now) == "2d"
    assert age(now + timedelta(seconds=5), now) == "0s"  # clock skew
