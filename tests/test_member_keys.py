"""String member keys (card numbers with leading zeros and a letter) through import, train,
recommend, score-offers, forecast-visits and decide: what goes in and out is the club's key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from nbo.cli import app
from nbo.data.contract import TABLES
from nbo.data.io import ClubData, table_path
from nbo.data.keys import MemberKeys

runner = CliRunner()
AT = "2024-04-01"


def club_key(member_id: int) -> str:
    return f"C{member_id:09d}"


@pytest.fixture(scope="session")
def keyed_club(synth_club: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synth_club`` exported as Parquet with string member keys, imported by the mapping."""
    export = tmp_path_factory.mktemp("keyed-export")
    tables: dict[str, dict[str, object]] = {}
    for name, spec in TABLES.items():
        path = table_path(synth_club, name)
        if path is None:
            continue
        frame = ClubData(synth_club).raw(name).collect()
        if "member_id" in frame.columns:
            frame = frame.with_columns(
                pl.col("member_id").map_elements(club_key, return_dtype=pl.String)
            )
        frame.write_parquet(export / f"{name}.parquet")
        columns = {c.name: c.name for c in spec.columns if c.name in frame.columns}
        tables[name] = {"file": f"{name}.parquet", "columns": columns}
    mapping = export / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"tables": tables}), encoding="utf-8")
    out = tmp_path_factory.mktemp("keyed") / "club"
    result = runner.invoke(
        app, ["data", "import", "files", str(export), "--mapping", str(mapping), str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def keyed_registry(keyed_club: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-keyed') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        trained = runner.invoke(app, ["train", "--data", str(keyed_club), "--as-of", AT])
        assert trained.exit_code == 0, trained.output
        promoted = runner.invoke(app, ["promote"])
        assert promoted.exit_code == 0, promoted.output
    yield uri


@pytest.fixture
def keyed_env(keyed_registry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", keyed_registry)


def test_import_keeps_the_keys(keyed_club: Path, synth_club: Path) -> None:
    keys = MemberKeys.of(keyed_club)
    assert keys.keyed
    members = ClubData(synth_club).members.collect()["member_id"]
    assert keys.pairs is not None
    assert set(keys.pairs["member_key"]) >= {club_key(m) for m in members}
    # same receipts, members renamed: lines per member are unchanged
    ours = keys.to_keys(ClubData(keyed_club).transactions.collect()).group_by("member_id").len()
    theirs = ClubData(synth_club).transactions.collect().group_by("member_id").len()
    theirs = theirs.with_columns(pl.col("member_id").map_elements(club_key, return_dtype=pl.String))
    assert ours.sort("member_id").equals(theirs.sort("member_id"))


def _keys_of(path: Path) -> set[str]:
    frame = pl.read_parquet(path)
    assert frame.schema["member_id"] == pl.String
    return set(frame["member_id"])


def test_cli_outputs_and_inputs_use_the_club_keys(
    keyed_env: None, keyed_club: Path, tmp_path: Path
) -> None:
    known = set(MemberKeys.of(keyed_club).pairs["member_key"])  # type: ignore[index]
    data = ["--data", str(keyed_club)]
    recs = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", *data, "--at", AT, "--out", str(recs), "--k", "3"])
    assert result.exit_code == 0, result.output
    assert _keys_of(recs) <= known

    visits = tmp_path / "visits.parquet"
    args = ["forecast-visits", *data, "--at", AT, "--out", str(visits)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _keys_of(visits) <= known

    decisions = tmp_path / "decisions.parquet"
    db = f"sqlite:///{tmp_path / 'history.db'}"
    args = ["decide", *data, "--at", AT, "--out", str(decisions), "--database-url", db]
    result = runner.invoke(app, [*args, "--examples", "1"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    decided = pl.read_parquet(decisions)
    assert _keys_of(decisions) <= known and decided.height > 0
    first = decided["member_id"][0]
    assert first in result.output  # the example list names the member by the club's key

    pairs = tmp_path / "pairs.parquet"
    decided.select("member_id", "offer_id", pl.lit(AT).str.to_datetime().alias("at")).write_parquet(
        pairs
    )
    scored = tmp_path / "scored.parquet"
    args = ["score-offers", *data, "--pairs", str(pairs), "--out", str(scored)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _keys_of(scored) == set(decided["member_id"])

    # a member who joined after the import: a cold start under the key, as with integer ids
    late = decided.head(1).with_columns(pl.lit("C999999999").alias("member_id"))
    at = pl.lit(AT).str.to_datetime().alias("at")
    late.select("member_id", "offer_id", at).write_parquet(pairs)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _keys_of(scored) == {"C999999999"}


def test_the_api_takes_and_gives_the_club_keys(
    keyed_registry: str, keyed_club: Path, tmp_path: Path
) -> None:
    from datetime import date

    from fastapi.testclient import TestClient

    from nbo.serving.app import create_app
    from nbo.settings import Settings
    from tests.serving.conftest import KEYS, READER, WRITER, make_plan

    plans = make_plan(keyed_registry, keyed_club, tmp_path / "plans", day=date(2024, 4, 1))
    settings = Settings(
        api_keys=KEYS, plan_dir=plans, data_dir=keyed_club, today=date(2024, 4, 1),
        holdout_share=0.0, database_url=f"sqlite:///{tmp_path / 'nbo.db'}",
    )  # fmt: skip
    keys = MemberKeys.of(keyed_club)
    assert keys.pairs is not None
    known = keys.pairs["member_key"].sort().to_list()[:40]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        one = client.get(f"/v1/members/{known[0]}/offers", headers=READER)
        assert one.status_code == 200, one.text
        assert one.json()["member_id"] == known[0]
        batch = client.post("/v1/offers/batch", json={"member_ids": known}, headers=READER)
        assert batch.status_code == 200, batch.text
        assert [r["member_id"] for r in batch.json()["results"]] == known
        recs = client.get(f"/v1/members/{known[1]}/recommendations", headers=READER)
        assert recs.status_code == 200 and recs.json()["member_id"] == known[1]
        # a card issued after the import: served as a new member, under its key
        late = client.get("/v1/members/C999999999/offers", headers=READER)
        assert late.status_code == 200 and late.json()["cold_start"]
        # a number is not a key here: is 157 the card "C000000157"? refused, not guessed
        wrong = client.post(
            "/v1/offers/batch", json={"member_ids": [known[0], 157]}, headers=READER
        )
        assert wrong.status_code == 422 and "member_ids[1]" in wrong.json()["detail"]

        offered = next(r for r in batch.json()["results"] if r["offers"])
        decision = offered["offers"][0]
        event = {
            "event_id": "e-1", "event_type": "redemption", "member_id": offered["member_id"],
            "offer_id": decision["offer_id"], "decision_id": decision["decision_id"],
            "ts": "2024-04-01T12:00:00Z",
        }  # fmt: skip
        posted = client.post("/v1/events", json={"events": [event]}, headers=WRITER)
        assert posted.status_code == 200, posted.text
        service = client.app.state.service  # type: ignore[attr-defined]
        stored = service.store.events_for(int(keys.ids([offered["member_id"]])[0]))
        assert stored["event_id"].to_list() == ["e-1"]


def test_the_mlflow_model_takes_and_gives_the_club_keys(keyed_env: None, keyed_club: Path) -> None:
    import mlflow
    import pandas as pd

    from nbo.tracking.registry import configure

    configure()
    model = mlflow.pyfunc.load_model("models:/nbo@champion")
    pairs = MemberKeys.of(keyed_club).pairs
    assert pairs is not None
    some = pairs.sort("member_key").head(3)
    params = {"data": str(keyed_club), "k": 2, "at": AT}
    by_key = model.predict(pd.DataFrame({"member_key": some["member_key"].to_list()}), params)
    by_id = model.predict(pd.DataFrame({"member_id": some["member_id"].to_list()}), params)
    assert set(by_key["member_key"]) == set(some["member_key"])  # each named as the club does
    assert by_key.equals(by_id)  # the key is the member: the same answers either way
    # a number is no key of this club: refused by the model's schema, or by the key rule
    with pytest.raises(Exception, match="member_key"):
        model.predict(pd.DataFrame({"member_key": [157]}), params)
    with pytest.raises(Exception, match="send them as strings"):
        model.unwrap_python_model().predict(None, pd.DataFrame({"member_key": [157]}), params)
