"""`nbo recommend`, `score-offers`, `forecast-visits`: a registered model's scores as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from nbo.cli.common import console, fails_cleanly
from nbo.cli.models import DEFAULT_MODEL, DataOpt, ModelOpt, OutOpt, _bundle, _club, _date, _write
from nbo.errors import NboError

__all__ = ["register"]


@fails_cleanly
def recommend_cmd(
    data: DataOpt,
    out: OutOpt,
    at: Annotated[str, typer.Option("--at", help="Recommend as of this date.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 10,
    model: ModelOpt = DEFAULT_MODEL,
) -> None:
    """Top-k products per member: member_id, rank, product_id, score, reason."""
    bundle, club = _bundle(model), _club(data)
    with console.status("recommending"):
        recs = bundle.recommend(club, _date(at, "--at"), k=k)
    _write(recs, out, club.keys)


@fails_cleanly
def score_offers_cmd(
    data: DataOpt,
    out: OutOpt,
    pairs: Annotated[Path, typer.Option("--pairs", help="Parquet with member_id, offer_id, at.")],
    model: ModelOpt = DEFAULT_MODEL,
) -> None:
    """p_redeem for each (member_id, offer_id, at) pair."""
    try:
        frame = pl.read_parquet(pairs)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise NboError(f"{pairs}: cannot be read as Parquet ({str(exc).splitlines()[0]})") from None
    missing = {"member_id", "offer_id", "at"} - set(frame.columns)
    if missing:
        raise NboError(
            f"{pairs}: missing column(s) {', '.join(sorted(missing))} "
            "(need member_id, offer_id, at)"
        )
    club = _club(data)
    keys = club.keys
    if frame.schema.get("member_id") == pl.String:  # the club's own keys
        keys = keys.including(frame["member_id"].drop_nulls().unique().to_list())
        frame = keys.to_ids(frame)
    try:
        frame = frame.select(
            pl.col("member_id").cast(pl.Int64),
            pl.col("offer_id").cast(pl.String),
            pl.col("at").cast(pl.Datetime("us")),
        )
    except pl.exceptions.PolarsError as exc:
        raise NboError(f"{pairs}: {str(exc).splitlines()[0]}") from None
    bundle = _bundle(model)
    try:
        scored = bundle.score_offers(club, frame)
    except ValueError as exc:
        raise NboError(f"{pairs}: {exc}") from None
    _write(scored, out, keys)


@fails_cleanly
def forecast_visits_cmd(
    data: DataOpt,
    out: OutOpt,
    at: Annotated[str, typer.Option("--at", help="Forecast from this date.")],
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, max=365)] = 28,
    model: ModelOpt = DEFAULT_MODEL,
) -> None:
    """Per member: expected visits, next visit date, preferred weekday and hour."""
    bundle, club = _bundle(model), _club(data)
    forecast = bundle.forecast_visits(club, _date(at, "--at"), horizon_days)
    _write(
        forecast.select(
            "member_id",
            "expected_visits",
            "next_visit_date",
            "preferred_weekday",
            "preferred_hour",
            *[c for c in forecast.columns if c in ("lapsing", "cold_start")],
        ),
        out,
        club.keys,
    )


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
    app.command("score-offers")(score_offers_cmd)
    app.command("forecast-visits")(forecast_visits_cmd)
