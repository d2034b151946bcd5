"""Shared fixtures: every test runs with a clean LMS_* environment in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lms_shared import Service, create_service, load_settings
from lms_shared.observability import reset_logging
from lms_shared.testing import ManualClock


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LMS_") and not name.startswith("LMS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    reset_logging()


@pytest.fixture
def clock(manual_clock: ManualClock) -> ManualClock:
    """The plugin's ``manual_clock`` under the short name the tests use.

    Packages whose tests need another start time (auth, db, discovery)
    override it in their own conftest.
    """
    return manual_clock


@pytest.fixture
def make_service() -> Callable[..., Service]:
    """Build a service named ``courses`` with settings overrides."""

    def make(name: str = "courses", version: str = "1.0.0", **overrides: Any) -> Service:
        return create_service(name, version, settings=load_settings(**overrides))

    return make
