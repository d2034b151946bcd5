"""The lms-shared command line, run as users run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lms_shared import __version__
from lms_shared.cli import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lms_shared.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
        timeout=60,
    )


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"lms-shared {__version__}"


def test_settings_table_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_SECRET_KEY", "very-secret-value")
    monkeypatch.setenv("LMS_DATABASE_URL", "postgresql+asyncpg://app:pw123@db/lms")
    result = runner.invoke(app, ["settings", "--json"])
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["secret_key"] == "**********"
    assert shown["database_url"] == "postgresql+asyncpg://app:***@db/lms"
    assert "very-secret-value" not in result.output
    table = runner.invoke(app, ["settings"], terminal_width=200)
    assert "LMS_REQUEST_TIMEOUT" in table.output
    assert "very-secret-value" not in table.output


def test_settings_of_a_service_show_what_its_code_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "reviews_app.py").write_text(
        "from lms_shared import create_service, load_settings\n"
        "settings = load_settings(request_timeout=7.5, secret_key='s3cr3t-in-code-0123456789')\n"
        "service = create_service('reviews', '1.0.0', settings=settings)\n"
        "app = service.app\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["settings", "--json", "--service", "reviews_app:service"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["request_timeout"] == 7.5
    assert shown["secret_key"] == "**********"
    assert "s3cr3t" not in result.output
    by_app = runner.invoke(app, ["settings", "--json", "--service", "reviews_app:app"])
    assert json.loads(by_app.output)["request_timeout"] == 7.5
    missing = runner.invoke(app, ["settings", "--service", "no_such_module:service"])
    assert missing.exit_code == 2
    assert "cannot import 'no_such_module'" in missing.output


def test_settings_reports_invalid_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_MAX_BODY_BYTES", "lots")
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 2
    assert "LMS_MAX_BODY_BYTES" in result.output


def test_openapi_export_writes_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "catalog_service.py"
    module.write_text(
        "from lms_shared import create_service\n"
        "service = create_service('catalog', version='3.1.0')\n"
        "v1 = service.api(1)\n"
        "@v1.get('/items')\n"
        "async def items() -> list[int]:\n"
        "    return []\n"
        "service.include(v1)\n"
    )
    out = tmp_path / "out" / "catalog.json"
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["openapi", "export", "catalog_service:service", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    document = json.loads(out.read_text())
    assert document["info"]["version"] == "3.1.0"
    assert "/v1/items" in document["paths"]
    assert "Problem" in document["components"]["schemas"]


def test_openapi_export_to_stdout_and_bad_targets(tmp_path: Path) -> None:
    (tmp_path / "plain_app.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    ok = subprocess.run(
        [sys.executable, "-m", "lms_shared.cli", "openapi", "export", "plain_app"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["openapi"].startswith("3.1")
    missing = run("openapi", "export", "no_such_module_xyz:service")
    assert missing.returncode == 2
    assert "cannot import 'no_such_module_xyz'" in missing.stderr
    wrong = run("openapi", "export", "json:dumps")
    assert wrong.returncode == 2
    assert "names no lms-shared Service or FastAPI app" in wrong.stderr


def test_console_script_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "openapi" in result.stdout
