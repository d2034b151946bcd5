"""The front door of lms_shared.events, its error tree and its floor."""

from __future__ import annotations

import ast
from pathlib import Path

import lms_shared.events as events
from lms_shared.errors import LmsError, ProblemError
from lms_shared.events import _errors

PACKAGE = Path(events.__file__).parent


def test_one_root_and_problem_codes_as_data() -> None:
    for name in _errors.__all__:
        value = getattr(_errors, name)
        if isinstance(value, type):
            assert issubclass(value, events.EventError)
            assert issubclass(value, LmsError)
    slugs = [code.slug for code in events.PROBLEMS]
    assert len(slugs) == len(set(slugs))
    for error in (
        events.InvalidEvent,
        events.UnknownEventType,
        events.UnsupportedEventVersion,
        events.InvalidEventData,
        events.PublishFailed,
        events.TransportUnavailable,
    ):
        assert issubclass(error, ProblemError)
        assert error.code in events.PROBLEMS
    assert not issubclass(events.ReplayUnsupported, ProblemError)
    assert events.PublishFailed("down").status == 503


def test_the_package_knows_nothing_of_http_frameworks() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in {"fastapi", "starlette", "httpx"}, (path.name, name)
                assert not name.startswith(("lms_shared.http", "lms_shared.service")), path.name
