"""Run the history store's alembic migrations from code; no alembic.ini is needed.

The migration scripts ship inside the package (``nbo/history/migrations``), so an installed nbo
can upgrade its database. A new revision is written with
``alembic.command.revision(alembic_config(url), message=..., autogenerate=True)``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from nbo.errors import HistoryError
from nbo.history.engine import make_engine, normalise_url

__all__ = ["MIGRATIONS", "alembic_config", "downgrade", "migrate", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
"""The alembic script folder (env.py, script.py.mako, versions/) inside the package."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An alembic Config on the packaged scripts, for ``url`` or an open ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # configparser treats % as interpolation; URL-escaped passwords contain it
        rendered = normalise_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction.

    Raises HistoryError when the database cannot be reached.
    """
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection=connection), revision)
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise HistoryError(f"history store {where}: cannot migrate ({exc.orig})") from exc


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` (``"base"`` drops everything)."""
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), revision)


def migrate(url: str) -> None:
    """Bring the history store at ``url`` up to the newest schema (``alembic upgrade head``)."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
