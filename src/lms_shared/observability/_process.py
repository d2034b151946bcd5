"""Event-loop lag and process figures, sampled in the background.

:class:`LoopLagSampler` asks the event loop to wake it every ``interval``
and records how late it woke: the time callbacks and requests waited
behind whatever held the loop (a blocking call, a CPU-heavy handler). It
deliberately reads the loop's own clock, not the service clock: it
measures the real loop, which a manual clock would hide.

:class:`ProcessFigures` copies prometheus_client's process collector
(``/proc``: CPU time, memory, file descriptors, start time) into
multiprocess-safe families, because custom collectors are not shared
between worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.process_collector import ProcessCollector

from lms_shared.observability._logging import get_logger

__all__ = ["LoopLagSampler", "ProcessFigures"]

# process family -> how a gauge of it aggregates over processes
_Mode = Literal["livesum", "livemin"]
_GAUGES: dict[str, tuple[str, _Mode]] = {
    "process_virtual_memory_bytes": ("Virtual memory size in bytes (summed).", "livesum"),
    "process_resident_memory_bytes": ("Resident memory size in bytes (summed).", "livesum"),
    "process_open_fds": ("Open file descriptors (summed).", "livesum"),
    "process_max_fds": ("Maximum number of open file descriptors (lowest).", "livemin"),
    "process_start_time_seconds": ("Start time of the oldest process (Unix seconds).", "livemin"),
}
_CPU = "process_cpu_seconds"


class LoopLagSampler:
    """Records how late the event loop runs a timer, every ``interval`` seconds.

    Args:
        observe: called with each lag sample (seconds, >= 0).
        interval: seconds between samples.
        on_tick: called after each sample (other periodic sampling).
    """

    def __init__(
        self,
        observe: Callable[[float], None],
        interval: float,
        *,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.observe = observe
        self.interval = interval
        self.on_tick = on_tick
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger("lms.metrics")

    @property
    def running(self) -> bool:
        """Whether the sampling task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start sampling on the running loop (again after :meth:`stop`)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="lms event-loop lag sampler"
            )

    async def stop(self) -> None:
        """Stop sampling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.observe(max(0.0, loop.time() - due))
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:  # sampling must never end for one bad read
                    self._log.exception("metrics sampling failed")


class ProcessFigures:
    """This process's CPU, memory and descriptors as multiprocess-safe families.

    Args:
        registry: where the families register (they are also written to
            the multiprocess files).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._source = ProcessCollector(registry=None)
        self._gauges = {
            name: Gauge(name, doc, registry=registry, multiprocess_mode=mode)
            for name, (doc, mode) in _GAUGES.items()
        }
        self._cpu = Counter(_CPU, "Total user and system CPU time (summed).", registry=registry)
        self._cpu_seen = 0.0

    def sample(self) -> None:
        """Read ``/proc`` once and update the families."""
        for family in self._source.collect():
            if not family.samples:
                continue
            value = family.samples[0].value
            if family.name == _CPU:
                if value > self._cpu_seen:
                    self._cpu.inc(value - self._cpu_seen)
                    self._cpu_seen = value
            elif family.name in self._gauges:
                self._gauges[family.name].set(value)
