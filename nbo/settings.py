"""Service settings from ``NBO_*`` environment variables (pydantic-settings).

Nothing is read at import: :func:`get_settings` builds the settings on first call, so tests can
set environment variables first (and ``get_settings.cache_clear()`` between them).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ROLES", "Role", "Settings", "get_settings"]

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
"""API roles, each allowed what the ones before it are: read offers < post events < reload."""


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

    # -- serving (``nbo serve``) -------------------------------------------------------------
    api_keys: dict[str, Role] = Field(default_factory=dict)
    """API keys and their roles, as JSON: ``{"<key>": "reader" | "writer" | "admin"}``.

    Sent in the ``X-API-Key`` header. With no keys the service does not start.
    """

    data_dir: Path = Path("data/completejourney")
    """The club dataset the service decides from (``nbo data import`` output)."""

    model_uri: str = "models:/nbo@champion"
    """The model served to the champion arm (a registry URI, ``runs:/…`` or a bundle path)."""

    challenger_uri: str = "models:/nbo@challenger"
    """The model served to the challenger arm (used only when ``challenger_share`` > 0)."""

    challenger_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of members (sticky by a hash of member_id) served by the challenger."""

    holdout_share: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of members (sticky, persistent) in the holdout group: they get no offers."""

    experiment_salt: str = "nbo"
    """Salt of the arm hash; changing it reshuffles the arms (do not, mid-experiment)."""

    policy_file: Path | None = None
    """Decision policy YAML (default policy if unset)."""

    today: date | None = None
    """The service's today (``YYYY-MM-DD``) when requests give no ``at``; unset: the real date.
    A replayed dataset such as Complete Journey sets the day its model was trained for."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Request bodies above this size are refused with 413."""

    decisions_sync: bool = False
    """Wait for the disk on every commit of online decisions (SQLite ``synchronous=FULL``).

    Off by default: decisions are committed before the answer and survive a crash of the
    service, but the last moments before a power cut may be lost (events are always synced).
    PostgreSQL always commits durably."""

    budget_refresh_seconds: float = Field(default=5.0, gt=0)
    """How often each worker re-reads campaign budget usage from the history store."""

    plan_ahead_minutes: int = Field(default=60, ge=0, le=1440)
    """Minutes before midnight (UTC) at which each worker builds the next day's plans, so that
    the day's first requests do not wait for that whole-club scoring run; 0: a day is planned
    by its first request. Unused while ``today`` is set (the day never turns)."""

    fast_path: bool = True
    """Answer a plain ``GET /v1/members/{id}/offers`` before FastAPI (the same answer for less
    than half the CPU); off: every request goes through FastAPI's route."""

    reload_file: Path | None = None
    """A file whose change makes every worker reload its models (``nbo serve`` sets it)."""

    @model_validator(mode="after")
    def _arms_fit(self) -> Settings:
        if self.challenger_share + self.holdout_share > 1.0:
            raise ValueError("challenger_share + holdout_share must be at most 1")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, built once per process."""
    return Settings()
