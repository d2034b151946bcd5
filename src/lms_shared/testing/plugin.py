"""pytest plugin of lms-shared: fixtures for service authors' tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lms_shared.testing import _db
from lms_shared.testing._auth import FakeIdentity
from lms_shared.testing._clock import ManualClock
from lms_shared.testing._logs import CapturedLogs, capture_logs


def pytest_configure(config: pytest.Config) -> None:
    """Put pytest-asyncio in ``auto`` mode unless the project chose a mode itself.

    So that ``pip install 'lms-shared[testing]'`` is enough for a new
    project's first ``async def test_...`` to run.
    """
    if not config.pluginmanager.hasplugin("asyncio"):
        return
    # what the configuration files (and -o) set; pytest 9 keeps it in _inicfg
    # and deprecates the public inicfg, which older versions have instead
    configured = getattr(config, "_inicfg", None)
    if configured is None:
        configured = config.inicfg
    chosen = config.getoption("asyncio_mode", None) is not None or "asyncio_mode" in configured
    if not chosen:
        config.option.asyncio_mode = "auto"


@pytest.fixture
def manual_clock() -> ManualClock:
    """A :class:`ManualClock` starting at 2026-01-01 UTC."""
    return ManualClock()


@pytest.fixture
def fake_identity() -> FakeIdentity:
    """A :class:`FakeIdentity` on the system clock (build your own to share a ManualClock)."""
    return FakeIdentity()


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    """The log lines written during the test, as dicts."""
    with capture_logs() as captured:
        yield captured


try:
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # without pytest-asyncio, async fixtures need another plugin
    _async_fixture = pytest.fixture

# the per-test database (lms_shared.testing._db)
postgres_url = pytest.fixture(scope="session")(_db.postgres_url)
database_url = pytest.fixture(_db.database_url)
database_metadata = pytest.fixture(_db.database_metadata)
database = _async_fixture(_db.database)
