"""Service settings from ``NBO_*`` environment variables (pydantic-settings).

Nothing is read at import: :func:`get_settings` builds the settings on first call, so tests can
set environment variables first (and ``get_settings.cache_clear()`` between them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'nbo.db'}"


class Settings(BaseSettings):
    """Settings of the nbo service; each field is read from ``NBO_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="NBO_",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    database_url: str = Field(default_factory=_default_database_url)
    """SQLAlchemy URL of the interaction history store (``NBO_DATABASE_URL``).

    Default: SQLite file ``nbo.db`` in the working directory. PostgreSQL as
    ``postgresql://user:password@host:5432/dbname`` (run through psycopg 3).
    """


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, built once per process."""
    return Settings()
