from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from lms_shared import SettingsError, create_service, load_settings
from lms_shared.redaction import redact_url


def test_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.state_dir == Path(".lms")
    assert settings.database_url is None
    assert settings.request_timeout == 30.0
    assert settings.max_body_bytes == 1 << 20


def test_environment_variables_use_the_lms_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("LMS_ENV", "production")
    settings = load_settings()
    assert settings.request_timeout == 2.5
    assert settings.env == "production"


def test_dotenv_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("LMS_LOG_LEVEL=debug\nLMS_MAX_BODY_BYTES=2048\n")
    monkeypatch.setenv("LMS_MAX_BODY_BYTES", "4096")
    settings = load_settings()
    assert settings.log_level == "debug"
    assert settings.max_body_bytes == 4096


def test_secrets_directory_provides_secret_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "lms_secret_key").write_text("s3cr3t-from-file")
    monkeypatch.setenv("LMS_SECRETS_DIR", str(secrets))
    settings = load_settings()
    assert isinstance(settings.secret_key, SecretStr)
    assert settings.secret_key.get_secret_value() == "s3cr3t-from-file"
    assert "s3cr3t" not in repr(settings)


def test_missing_secrets_directory_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_SECRETS_DIR", "/nonexistent/secrets")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.problems == [("LMS_SECRETS_DIR", "not a directory: /nonexistent/secrets")]


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_REQUEST_TIMEOUT", "soon")
    monkeypatch.setenv("LMS_ENV", "staging")
    with pytest.raises(SettingsError) as info:
        create_service("courses", "1.0.0")
    variables = dict(info.value.problems)
    assert set(variables) == {"LMS_REQUEST_TIMEOUT", "LMS_ENV"}
    assert "valid number" in variables["LMS_REQUEST_TIMEOUT"]
    assert "(got 'soon')" in variables["LMS_REQUEST_TIMEOUT"]
    assert "'development', 'test' or 'production'" in variables["LMS_ENV"]
    assert str(info.value).startswith("invalid settings:\n  LMS_")


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(request_timeout=0, max_body_bytes=-1)
    assert {var for var, _ in info.value.problems} == {
        "LMS_REQUEST_TIMEOUT",
        "LMS_MAX_BODY_BYTES",
    }


def test_invalid_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(secret_key=["not", "a", "string"])
    assert info.value.problems[0][0] == "LMS_SECRET_KEY"
    assert "not" not in info.value.problems[0][1].split("(got")[-1]


def test_redacted_hides_secrets_and_url_passwords() -> None:
    settings = load_settings(
        secret_key="hunter2", database_url="postgresql+asyncpg://app:pa55@db:5432/lms"
    )
    shown = settings.redacted()
    assert shown["secret_key"] == "**********"
    assert shown["database_url"] == "postgresql+asyncpg://app:***@db:5432/lms"
    assert "hunter2" not in str(shown)
    assert "pa55" not in str(shown)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("nats://localhost:4222", "nats://localhost:4222"),
        ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("http://[::1", "http://[::1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.request_timeout = 1  # type: ignore[misc]
