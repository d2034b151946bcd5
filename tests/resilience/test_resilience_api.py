"""The public surface of lms_shared.resilience, its problem codes and its floor."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import lms_shared.resilience as resilience
from lms_shared.errors import ErrorCode, LmsError, ProblemError, ServiceUnavailable
from lms_shared.resilience import (
    PROBLEMS,
    AttemptTimeout,
    BulkheadFull,
    CircuitOpen,
    ConcurrencyLimited,
    DeadlineExceeded,
    ResilienceError,
    SharedStateUnavailable,
)

PACKAGE = Path(resilience.__file__).parent


def test_problem_codes_are_data() -> None:
    assert all(isinstance(code, ErrorCode) for code in PROBLEMS)
    assert {(c.slug, c.status) for c in PROBLEMS} == {
        ("circuit-open", 503),
        ("bulkhead-full", 503),
        ("concurrency-limited", 503),
        ("attempt-timeout", 504),
        ("deadline-exceeded", 504),
    }
    raised = [
        CircuitOpen("identity", "OPEN", 1.5),
        BulkheadFull("identity", 4),
        ConcurrencyLimited("identity", 8),
        AttemptTimeout(2.0),
        DeadlineExceeded(5.0),
    ]
    assert [e.problem_code for e in raised] == list(PROBLEMS)
    for error in raised:
        assert isinstance(error, ProblemError)
        assert isinstance(error, ResilienceError)
        copy = pickle.loads(pickle.dumps(error))  # errors cross process pools intact
        assert type(copy) is type(error)
        assert copy.problem_code == error.problem_code
    assert isinstance(raised[0], ServiceUnavailable)
    assert raised[0].headers == {"Retry-After": "2"}  # rounded up, never early
    assert CircuitOpen("identity", "FORCED_OPEN").headers == {}
    assert issubclass(SharedStateUnavailable, LmsError)
    assert not issubclass(SharedStateUnavailable, ProblemError)


def test_importing_starts_nothing_and_loads_no_driver() -> None:
    # the package root first: what other packages import is not ours to judge here
    probe = (
        "import sys, threading, logging\n"
        "import lms_shared\n"
        "had_redis = 'redis' in sys.modules\n"
        "threads = threading.active_count()\n"
        "handlers = list(logging.getLogger().handlers)\n"
        "import lms_shared.resilience\n"
        "assert had_redis or 'redis' not in sys.modules, 'redis imported'\n"
        "assert threading.active_count() == threads, 'a thread started'\n"
        "assert logging.getLogger().handlers == handlers, 'logging configured'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
