"""`lms-shared new`: the service it writes passes its own tests, mypy --strict and ruff."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lms_shared.cli import app as cli
from lms_shared.cli._new import Scaffold, ScaffoldError, render, scaffold

runner = CliRunner()
BIN = Path(sys.executable).parent
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "PYTEST_"))}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One service generated through the CLI, outside this repository."""
    target = tmp_path_factory.mktemp("new") / "course-reviews"
    result = runner.invoke(
        cli, ["new", "course-reviews", "--path", str(target), "--resource", "review"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote the course-reviews service" in result.output
    return target


def test_it_writes_a_whole_project(project: Path) -> None:
    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert {
        "pyproject.toml",
        "README.md",
        ".env",
        ".gitignore",
        "course_reviews/app.py",
        "course_reviews/models.py",
        "course_reviews/store.py",
        "course_reviews/tables.py",
        "course_reviews/permissions.py",
        "tests/conftest.py",
        "tests/test_reviews.py",
        "tests/test_migrations.py",
    } <= files
    migrations = list((project / "course_reviews" / "migrations").glob("*.py"))
    assert len(migrations) == 1
    assert migrations[0].name[:8].isdigit()  # the day it was made, then the revision
    text = "\n".join(p.read_text() for p in project.rglob("*") if p.is_file())
    assert re.search(r"\{\{\s*\w+\s*\}\}", text) is None  # every placeholder was filled
    assert "# lms-shared: events" in text
    assert "# lms-shared: clients" in text


def test_its_own_tests_pass(project: Path) -> None:
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_it_passes_mypy_strict_and_ruff(project: Path) -> None:
    typed = run([str(BIN / "mypy"), "--cache-dir", os.devnull], project)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    linted = run([str(BIN / "ruff"), "check", "--no-cache", "."], project)
    assert linted.returncode == 0, linted.stdout
    formatted = run([str(BIN / "ruff"), "format", "--check", "--no-cache", "."], project)
    assert formatted.returncode == 0, formatted.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Courses", "lower-case letters and digits"),
        ("two--dashes", "single dashes"),
        ("x" * 41, "at most 40"),
        ("json", "shadow"),
        ("lms-shared", "shadow"),
        ("tests", "shadow"),
        ("class", "keyword"),
    ],
)
def test_bad_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        Scaffold.of(name)


def test_bad_resources_are_refused() -> None:
    with pytest.raises(ScaffoldError, match="the resource"):
        Scaffold.of("reviews", resource="Review")
    with pytest.raises(ScaffoldError, match="must differ"):
        Scaffold.of("reviews", resource="sheep", plural="sheep")


def test_an_existing_folder_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(cli, ["new", "reviews", "--path", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_broken_template_writes_nothing(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "a.txt.tmpl").write_text("fine {{name}}")
    (templates / "b.txt.tmpl").write_text("broken {{nonsense}}")
    target = tmp_path / "out"
    with pytest.raises(ScaffoldError, match="unknown placeholder"):
        scaffold(Scaffold.of("reviews"), target, now=NOW, templates=templates)
    assert not target.exists()


def test_render_keeps_a_brace_before_a_placeholder() -> None:
    assert render("{{{resource}}_id}", {"resource": "quiz"}) == "{quiz_id}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_it_serves_and_trusts_a_minted_token(project: Path, tmp_path: Path) -> None:
    """The issue's whole first hour: new, serve, token mint, 200 and 403."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "PYTEST_"))}
    env["LMS_STATE_DIR"] = str(tmp_path / "state")
    port = free_port()
    command = [str(BIN / "lms-shared"), "serve", "course_reviews.app:service", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)

        def mint(*args: str) -> str:
            minted = subprocess.run(
                [str(BIN / "lms-shared"), "token", "mint", "--sub", "ada", *args],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return minted.stdout.strip()

        instructor = {"authorization": f"Bearer {mint('--role', 'instructor')}"}
        observer = {"authorization": f"Bearer {mint('--role', 'observer')}"}
        created = httpx.post(
            f"{base}/v1/reviews", json={"title": "Good course"}, headers=instructor, timeout=10
        )
        listed = httpx.get(f"{base}/v1/reviews", headers=instructor, timeout=10)
        refused = httpx.get(f"{base}/v1/reviews", headers=observer, timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert created.status_code == 201, created.text
    assert listed.status_code == 200
    assert [item["title"] for item in listed.json()["items"]] == ["Good course"]
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
