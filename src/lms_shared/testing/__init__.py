"""Test doubles and helpers for services built on lms-shared.

Everything here is public API, for service authors' own tests:

* :class:`ManualClock`: a clock the test advances;
* :func:`service_client`: a started service and an httpx client for it;
* :func:`lifespan`: drive any ASGI app's lifespan;
* :func:`capture_logs`: the log lines a block wrote, as dicts.

The pytest plugin (``lms_shared.testing.plugin``, registered as an entry
point) offers them as fixtures: ``manual_clock`` and ``logs``.
"""

from lms_shared.testing._client import LifespanError, lifespan, service_client
from lms_shared.testing._clock import ManualClock
from lms_shared.testing._logs import CapturedLogs, capture_logs

__all__ = [
    "CapturedLogs",
    "LifespanError",
    "ManualClock",
    "capture_logs",
    "lifespan",
    "service_client",
]
