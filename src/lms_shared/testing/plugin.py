"""pytest plugin of lms-shared: fixtures for service authors' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lms_shared.testing._clock import ManualClock
from lms_shared.testing._logs import CapturedLogs, capture_logs


@pytest.fixture
def manual_clock() -> ManualClock:
    """A :class:`ManualClock` starting at 2026-01-01 UTC."""
    return ManualClock()


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    """The log lines written during the test, as dicts."""
    with capture_logs() as captured:
        yield captured
