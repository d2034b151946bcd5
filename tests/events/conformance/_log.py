"""The embedded log's conformance factories: a fresh SQLite file per namespace."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from lms_shared.clock import SystemClock
from lms_shared.events import Transport
from lms_shared.events._log import LogTransport


@asynccontextmanager
async def transport(namespace: str) -> AsyncIterator[Transport]:
    folder = Path(tempfile.mkdtemp(prefix=f"lms-log-{namespace}-"))
    started = LogTransport.from_state_dir(folder, clock=SystemClock())
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def unreachable(namespace: str) -> AsyncIterator[Transport]:
    folder = Path(tempfile.mkdtemp(prefix=f"lms-log-{namespace}-"))
    blocker = folder / "not-a-folder"
    blocker.write_text("a file where the state folder should be\n")
    down = LogTransport.from_state_dir(blocker, clock=SystemClock())
    try:
        yield down
    finally:
        await down.stop()
        shutil.rmtree(folder, ignore_errors=True)
