"""Shared fixtures: a tiny, hand-made club that meets the contract; a scratch PostgreSQL db."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from nbo.cli import THREAD_DEFAULTS
from nbo.data.contract import TABLES
from nbo.data.io import write_dataset

for _name, _value in THREAD_DEFAULTS.items():  # as the console script does, before sklearn loads
    os.environ.setdefault(_name, _value)

Tables = dict[str, pl.DataFrame]
# the required receipt-line columns, in contract order: hand-made lines are tuples of these
LINE_COLUMNS = [c.name for c in TABLES["transactions"].columns if c.required]


def tiny_tables() -> Tables:
    """Three members, four products, one campaign with two offers; every contract table."""
    t0 = datetime(2024, 3, 4, 10, 0)
    lines = [
        # member, basket, product, store, ts, quantity, sales_value
        (1, 100, 10, 7, t0, 1.0, 1.5),
        (1, 100, 11, 7, t0, 2.0, 4.0),
        (1, 101, 10, 7, datetime(2024, 3, 11, 10, 5), 1.0, 1.5),
        (2, 200, 12, 8, datetime(2024, 3, 5, 17, 30), 1.0, 3.2),
        (3, 300, 13, 8, datetime(2024, 3, 6, 12, 0), 0.5, 2.0),
    ]
    transactions = pl.DataFrame(
        lines,
        schema=LINE_COLUMNS,
        orient="row",
    ).with_columns(retail_disc=pl.lit(0.0), coupon_disc=pl.lit(0.0), coupon_match_disc=pl.lit(0.0))
    tables: Tables = {
        "members": pl.DataFrame({"member_id": [1, 2, 3], "joined_at": [datetime(2024, 1, 1)] * 3}),
        "products": pl.DataFrame(
            {
                "product_id": [10, 11, 12, 13],
                "department": ["DAIRY", "DAIRY", "BAKERY", "PRODUCE"],
                "category": ["MILK", "CHEESE", "BREAD", "FRUIT"],
            }
        ),
        "transactions": transactions,
        "campaigns": pl.DataFrame(
            {
                "campaign_id": ["C1"],
                "campaign_type": ["Type A"],
                "start_date": [date(2024, 3, 1)],
                "end_date": [date(2024, 3, 31)],
                "targeted": [True],
            }
        ),
        "campaign_audience": pl.DataFrame({"campaign_id": ["C1", "C1"], "member_id": [1, 2]}),
        "offers": pl.DataFrame(
            {
                "offer_id": ["C1-a", "C1-b"],
                "campaign_id": ["C1", "C1"],
                "discount_value": [0.5, 1.0],
            }
        ),
        "offer_products": pl.DataFrame({"offer_id": ["C1-a", "C1-b"], "product_id": [10, 12]}),
        "redemptions": pl.DataFrame(
            {"member_id": [1], "offer_id": ["C1-a"], "ts": [datetime(2024, 3, 11, 10, 5)]}
        ),
    }
    return {name: conform_frame(name, frame) for name, frame in tables.items()}


def conform_frame(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Cast the columns a hand-made frame has to their contract types."""
    schema = TABLES[name].schema
    return frame.cast({c: schema[c] for c in frame.columns if c in schema})


@pytest.fixture
def make_club(tmp_path: Path) -> Callable[..., Path]:
    """Write the tiny club, with any tables replaced, and return its directory."""
    counter = iter(range(1000))

    def make(**replace: pl.DataFrame) -> Path:
        tables = tiny_tables() | replace
        out = tmp_path / f"club{next(counter)}"
        write_dataset(tables, out, source="test")
        return out

    return make


@pytest.fixture
def tiny_club(make_club: Callable[..., Path]) -> Path:
    return make_club()


@pytest.fixture(scope="session")
def synth_club(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 members, 20 weeks, with campaigns and redemptions (written once per session)."""
    from nbo.data.synth import generate_club

    root = tmp_path_factory.mktemp("synth") / "club"
    generate_club(root, members=300, products=150, weeks=20, seed=7, workers=1)
    return root


# the server the PostgreSQL tests use: a maintenance database on it, reached as its superuser
POSTGRES_ADMIN_URL = os.environ.get(
    "NBO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for one test, dropped afterwards.

    Without a server the test is skipped, except in CI (``CI=true``), where it fails.
    """
    import psycopg
    from sqlalchemy import make_url

    admin = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {admin!r}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"nbo_test_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def registry(synth_club: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local MLflow store with a bundle trained on ``synth_club`` as of 2024-04-01, promoted."""
    import mlflow
    from typer.testing import CliRunner

    from nbo.cli import app

    runner = CliRunner()
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        result = runner.invoke(app, ["train", "--data", str(synth_club), "--as-of", "2024-04-01"])
        assert result.exit_code == 0, result.output
        assert "registered nbo version 1 as candidate" in result.output
        promoted = runner.invoke(app, ["promote"])
        assert promoted.exit_code == 0, promoted.output
        assert "champion is now version 1" in promoted.output
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def env(registry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point MLflow at the ``registry`` store for one test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
