"""The database benchmark runs (a smoke run: tests never assert on timings)."""

from __future__ import annotations

import pytest

from bench import db as bench_db


@pytest.mark.postgres
def test_the_benchmark_runs_and_reports_every_variant(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench_db.main(["--quick", "--rounds", "1", "--lookups", "3", "--url", postgres_url])
    assert code == 0
    out = capsys.readouterr().out
    for name in bench_db.NAMES.values():
        assert name.split(",")[0] in out
    assert "target:" in out


def test_without_a_server_it_skips_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    assert bench_db.main(["--quick", "--url", url]) == 0
    assert "skipped" in capsys.readouterr().out
    assert bench_db.main(["--quick", "--check", "--url", url]) == 1
