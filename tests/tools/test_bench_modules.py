"""Every benchmark module imports and has a ``main`` (``make bench`` would fail otherwise)."""

from __future__ import annotations

import pytest

from bench.__main__ import _load, available


def test_there_are_benchmarks() -> None:
    assert {"http", "events", "resilience", "client"} <= set(available())


@pytest.mark.parametrize("name", available())
def test_a_benchmark_module_loads(name: str) -> None:
    main, summary = _load(name)
    assert callable(main)
    assert summary, f"bench/{name}.py needs a one-line docstring for --list"
