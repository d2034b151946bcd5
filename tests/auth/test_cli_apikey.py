"""``lms-shared apikey``: create, list, rotate, revoke against the service's SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lms_shared.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path / "state"))


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["apikey", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_rotate_revoke(tmp_path: Path) -> None:
    created = json.loads(
        invoke(
            "create", "-s", "courses", "--name", "ci", "--owner", "deploy-bot",
            "--role", "instructor", "--scope", "course:*", "--expires-in-days", "30", "--json",
        )
    )  # fmt: skip
    assert created["key"].startswith(f"lms_{created['id']}_")
    assert created["roles"] == ["instructor"]
    assert created["scopes"] == ["course:*"]
    assert (tmp_path / "state" / "courses.sqlite3").exists()

    listed = json.loads(invoke("list", "-s", "courses", "--json"))
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert created["key"] not in json.dumps(listed)

    rotated = invoke("rotate", created["id"], "-s", "courses", "--overlap-hours", "0")
    new_key = rotated.strip().splitlines()[-1]
    assert new_key.startswith("lms_")
    assert new_key != created["key"]
    new_id = new_key.split("_")[1]

    assert "revoked" in invoke("revoke", new_id, "-s", "courses")
    assert json.loads(invoke("list", "-s", "courses", "--json")) == []
    everything = json.loads(invoke("list", "-s", "courses", "--all", "--json"))
    assert {k["id"] for k in everything} == {created["id"], new_id}
    table = invoke("list", "-s", "courses", "--all")
    assert "revoked" in table
    assert "rotated" in table


def test_the_plain_output_shows_the_key_once() -> None:
    output = invoke("create", "-s", "grading", "--name", "ops", "--owner", "ops")
    assert "copy it now" in output
    assert output.strip().splitlines()[-1].startswith("lms_")


def test_errors_exit_non_zero() -> None:
    unknown = runner.invoke(app, ["apikey", "revoke", "ffffffffffffffff", "-s", "courses"])
    assert unknown.exit_code == 1
    assert "does not exist" in unknown.output
    bad_scope = runner.invoke(
        app, ["apikey", "create", "-s", "courses", "--name", "x", "--owner", "y", "--scope", "all"]
    )
    assert bad_scope.exit_code == 1
    assert "permission pattern" in bad_scope.output
    bad_service = runner.invoke(app, ["apikey", "list", "-s", "no.such.module:app"])
    assert bad_service.exit_code == 2
