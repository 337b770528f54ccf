"""Settings from NBO_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbo.settings import Settings, get_settings


def test_database_defaults_to_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NBO_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().database_url == f"sqlite:///{tmp_path / 'nbo.db'}"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_DATABASE_URL", "postgresql://nbo@db/nbo")
    assert Settings().database_url == "postgresql://nbo@db/nbo"
    get_settings.cache_clear()
    try:
        assert get_settings().database_url == "postgresql://nbo@db/nbo"
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_fields_are_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
