"""Service settings from ``NBO_*`` environment variables (pydantic-settings).

Nothing is read at import: :func:`get_settings` builds the settings on first call, so tests can
set environment variables first (and ``get_settings.cache_clear()`` between them).
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import Field, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nbo.errors import NboError

__all__ = [
    "DIGEST_PREFIX",
    "FAILED_ENV",
    "MIGRATED_ENV",
    "ROLES",
    "RateLimit",
    "Role",
    "Settings",
    "get_settings",
    "read_api_keys_file",
    "require_api_keys",
]

Role = Literal["metrics", "reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
"""API roles, each allowed what the ones before it are: read offers < post events < reload.
``metrics`` stands apart: it reads ``/v1/metrics`` (as ``admin`` may) and nothing else."""

DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_RATE = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]*)\s*(second|minute|hour)s?\s*")
_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_KEYS: TypeAdapter[dict[str, Role]] = TypeAdapter(dict[str, Role])


class RateLimit(NamedTuple):
    """``requests`` per ``seconds``, e.g. ``200/second`` or ``1000/10 seconds``."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _RATE.fullmatch(text)
        if match is None or int(match[1]) < 1 or match[2] == "0":
            raise ValueError(
                f"{text!r} is not a rate: write requests/period, e.g. 200/second, 1000/minute"
            )
        return cls(int(match[1]), int(match[2] or 1) * _SECONDS[match[3]])


def _check_api_keys(keys: dict[str, Role]) -> dict[str, Role]:
    for key in keys:
        if key.lower().startswith(DIGEST_PREFIX) and not _DIGEST.fullmatch(key):
            raise ValueError(
                f"API key {key[:16]!r}…: a digest is 'sha256:' and 64 lowercase hex digits "
                "(python -c \"import hashlib; print(hashlib.sha256(b'KEY').hexdigest())\")"
            )
    return keys


def read_api_keys_file(path: Path) -> dict[str, Role]:
    """The keys of ``NBO_API_KEYS_FILE`` (the JSON of ``NBO_API_KEYS``); NboError naming the
    file and the problem."""
    try:
        loaded = json.loads(path.read_text())
        return _check_api_keys(_KEYS.validate_python(loaded))
    except (OSError, ValueError) as exc:  # ValidationError and JSONDecodeError are ValueErrors
        problem = str(exc).splitlines()
        raise NboError(f"NBO_API_KEYS_FILE {path}: {'; '.join(problem[:3])}") from None


MIGRATED_ENV = "NBO_SERVE_MIGRATED"  # set by `nbo serve`: the parent migrated the database
FAILED_ENV = "NBO_SERVE_FAILED_FILE"  # set by `nbo serve --workers N`: where a worker says why


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
    """API keys and their roles, as JSON: ``{"<key>": "reader" | "writer" | "admin" | "metrics"}``.

    Sent in the ``X-API-Key`` header. A key may be given as its SHA-256 digest,
    ``"sha256:<64 hex digits>"``, so the plain key need not sit in the environment. With no
    keys (here or in ``NBO_API_KEYS_FILE``) the service does not start.
    """

    api_keys_file: Path | None = None
    """A JSON file of more keys, in the form of ``NBO_API_KEYS``; read again on
    ``/admin/reload`` and whenever it changes (checked every second), so keys are rotated
    without a restart."""

    rate_limit_per_key: str | None = None
    """Requests one key may make, per worker, e.g. ``200/second`` (a token bucket holding one
    period's requests); more are answered 429 with ``Retry-After``. Unset: no limit."""

    event_max_future_seconds: float = Field(default=3600.0, ge=0)
    """Events dated more than this after the service's now are refused (422)."""

    data_dir: Path = Path("data/completejourney")
    """The club dataset the plans are made from (``nbo serve --data``; the service names it in
    the ``nbo plan`` command it suggests for a day without a plan, and never reads it)."""

    plan_dir: Path = Path("data/plans")
    """The plan directory ``nbo plan --out`` writes and the service reads
    (``nbo serve --plans``)."""

    plan_check_seconds: float = Field(default=5.0, gt=0)
    """How often each worker looks for a day's plan that appeared or was replaced."""

    model_uri: str = "models:/nbo@champion"
    """The model ``nbo plan`` plans for the champion arm (its ``--model``; a registry URI,
    ``runs:/…`` or a bundle path). The service serves the models its plans were made with."""

    challenger_uri: str | None = None
    """The model ``nbo plan`` also plans for the challenger arm (its ``--challenger``)."""

    challenger_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of members (sticky by a hash of member_id) served by the challenger, on days whose
    plan has one (``nbo plan --challenger``); else the champion serves them."""

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

    fast_path: bool = True
    """Answer a plain ``GET /v1/members/{id}/offers`` before FastAPI (the same answer for less
    than half the CPU); off: every request goes through FastAPI's route."""

    reload_file: Path | None = None
    """A file whose change makes every worker read its plans again (``nbo serve`` sets it)."""

    # -- model health (``nbo monitor``; alert thresholds) ------------------------------------
    monitor_max_calibration_ratio: float = Field(default=2.0, gt=1.0)
    """Alert when a live model's mean predicted redemption rate is off the observed rate by
    more than this factor, either way (2: it promises twice, or half, what it gets)."""

    monitor_max_psi: float = Field(default=0.2, gt=0.0)
    """Alert when a served score's population stability index against its training
    distribution exceeds this (< 0.1 stable, 0.1-0.2 moderate, > 0.2 a real shift)."""

    monitor_min_decisions: int = Field(default=500, ge=1)
    """Settled decisions a model version needs before its calibration can raise an alert."""

    monitor_outcome_days: int = Field(default=28, ge=0)
    """Days after a decision before its outcome counts as known for calibration."""

    @field_validator("api_keys")
    @classmethod
    def _keys_well_formed(cls, keys: dict[str, Role]) -> dict[str, Role]:
        return _check_api_keys(keys)

    @field_validator("rate_limit_per_key")
    @classmethod
    def _rate_parses(cls, rate: str | None) -> str | None:
        if rate is not None and rate.strip():
            RateLimit.parse(rate)
            return rate
        return None

    @property
    def rate_limit(self) -> RateLimit | None:
        """``rate_limit_per_key`` parsed; None when unset."""
        return RateLimit.parse(self.rate_limit_per_key) if self.rate_limit_per_key else None

    @model_validator(mode="after")
    def _arms_fit(self) -> Settings:
        if self.challenger_share + self.holdout_share > 1.0:
            raise ValueError("challenger_share + holdout_share must be at most 1")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, built once per process."""
    return Settings()


def require_api_keys(settings: Settings) -> None:
    """The service answers no request without keys: refuse to start without any (or with a
    keys file that does not read)."""
    from_file = read_api_keys_file(settings.api_keys_file) if settings.api_keys_file else {}
    if not settings.api_keys and not from_file:
        raise NboError('no API keys configured: set NBO_API_KEYS, e.g. \'{"my-key": "admin"}\'')
