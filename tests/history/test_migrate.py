"""Alembic migrations: packaged scripts create, drop and recreate the schema on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from nbo.history import InteractionStore, migrate
from nbo.history.engine import make_engine
from nbo.history.migrate import MIGRATIONS, downgrade, upgrade
from nbo.history.schema import metadata


def test_migrate_creates_the_tables_and_indexes(store_url: str) -> None:
    migrate(store_url)
    engine = make_engine(store_url)
    try:
        schema = inspect(engine)
        assert {"decisions", "events", "alembic_version"} <= set(schema.get_table_names())
        assert {ix["name"] for ix in schema.get_indexes("decisions")} == {
            "ix_decisions_member_id_decided_at"
        }
        assert {ix["name"] for ix in schema.get_indexes("events")} == {
            "ix_events_member_id_offer_id_ts"
        }
        with engine.connect() as connection:
            # what the migrations built is what nbo.history.schema describes
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade(engine)
        downgrade(engine, "base")
        assert not {"decisions", "events"} & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert {"decisions", "events"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_opening_twice_is_harmless(store_url: str) -> None:
    for _ in range(2):
        with InteractionStore(store_url) as store:
            assert store.decisions_for(1).is_empty()


def test_no_migration_when_not_asked(store_url: str) -> None:
    with InteractionStore(store_url, migrate=False) as store:
        assert "decisions" not in inspect(store.engine).get_table_names()


def test_scripts_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS / "versions" / "__init__.py").is_file()
    assert any(MIGRATIONS.glob("versions/0001_*.py"))


def test_decisions_recorded_before_0004_read_as_delivered(store_url: str) -> None:
    from datetime import datetime

    from sqlalchemy import text

    engine = make_engine(store_url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO decisions (decision_id, member_id, offer_id, channel, decided_at, "
                    "rank, p_redeem, expected_value, propensity, explored, model_version) VALUES "
                    "('d0', 1, 'C1-a', 'email', :at, 1, 0.2, 1.0, 1.0, false, 'v1')"
                ),
                {"at": datetime(2024, 3, 4, 9)},
            )
        upgrade(engine)
    finally:
        engine.dispose()
    with InteractionStore(store_url) as store:
        assert store.decisions_for(1)["delivered"].to_list() == [True]
        state = store.contact_state(datetime(2024, 3, 5), [1])
        assert state.sent["offer_id"].to_list() == ["C1-a"]  # an older row is a contact
