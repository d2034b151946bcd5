"""The public test doubles themselves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from lms_shared import Clock, SystemClock
from lms_shared.observability import get_logger
from lms_shared.testing import CapturedLogs, ManualClock


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("early", 2))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    await clock.advance(1)
    assert woke == []
    await clock.advance(1)
    assert woke == ["early"]
    await clock.advance(8)
    assert woke == ["early", "late"]
    await asyncio.gather(*tasks)
    assert clock.monotonic() == 10
    assert clock.now() == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)


async def test_manual_clock_refuses_going_back_and_naive_starts() -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="backwards"):
        await clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2030, 1, 1))
    await clock.sleep(0)
    assert clock.now().year == 2030


async def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(ManualClock(), Clock)
    system = SystemClock()
    assert isinstance(system, Clock)
    before = system.monotonic()
    await system.sleep(0.01)
    assert system.monotonic() > before
    assert abs(system.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_manual_clock_fixture(manual_clock: ManualClock) -> None:
    assert manual_clock.monotonic() == 0


def test_logs_fixture_captures_bound_keys(logs: CapturedLogs) -> None:
    get_logger("demo", tenant="org-1").warning("hello", n=1)
    assert logs == [
        {"logger_name": "demo", "tenant": "org-1", "n": 1, "event": "hello", "log_level": "warning"}
    ]


def test_plugin_works_without_pytest_asyncio() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"
        "import pytest\n"
        "import lms_shared.testing.plugin as plugin\n"
        "assert plugin._async_fixture is pytest.fixture\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_factories_without_polyfactory_name_the_extra() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; sys.modules['polyfactory'] = None\n"
        "import lms_shared.testing as testing\n"
        "try:\n"
        "    testing.CourseFactory\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'lms-shared[testing]'" in result.stdout
