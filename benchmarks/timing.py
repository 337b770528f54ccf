"""Visit timing against the classics in one run: naive rate, BG/NBD, Pareto/NBD, VisitTiming.

For each club, cutoff and horizon (7, 28 and 91 days by default) every method forecasts the
members who visited before the cutoff, and each output is scored by what it claims to be
(:mod:`nbo.evaluation.visit_scores`), as a ratio to BG/NBD with a 95 % bootstrap interval over
members; the summary gives the mean ratio over cutoffs and seeds with its range. Send time is
measured: how often the member shops within a day of the ``send_at`` a decision would carry
(the forecast's next visit date and usual hour, :func:`nbo.decisioning.present.send_at`),
against the club's busiest weekday and hour::

    .venv/bin/python benchmarks/timing.py --cj /tmp/cj --synth /tmp/synth --out timing.json

``--synth DIR`` makes (once) a synthetic club per ``--seeds`` under DIR; ``--short`` adds a
Complete Journey cut whose whole history (90 days) is no longer than the 91-day horizon.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from nbo.data.io import ClubData
from nbo.data.synth import generate_club
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import send_at
from nbo.evaluation.visit_scores import (
    LAPSE_DAYS,
    ratios,
    reference_forecasts,
    score,
    truth_at,
)
from nbo.features.history import History
from nbo.features.visits import member_visits
from nbo.models.timing import VisitTiming
from nbo.models.visit_counts import nb_p_zero

console = Console()
CJ_CUTOFFS = ("2017-06-05", "2017-07-31", "2017-09-25")
SYNTH_CUTOFFS = ("2024-12-02", "2025-03-31")  # 48 and 65 weeks into 78
SHORT_CUT = "2017-04-01"  # 90 days of Complete Journey


def timing_forecast(history: History, horizon: int) -> tuple[pl.DataFrame, float]:
    """VisitTiming fitted and predicted as of ``history``, with ``p_lapse``; and fit seconds.

    On a history too short for a training window of ``horizon`` days, it learns a shorter
    one (``trained_horizon_days_``) and scales it.
    """
    start = time.perf_counter()
    model = VisitTiming(horizon_days=horizon, n_threads=1).fit(history)
    seconds = time.perf_counter() - start
    frame = model.predict(history, horizon_days=horizon)
    lapse = model.predict(history, horizon_days=LAPSE_DAYS)["expected_visits"].to_numpy()
    return frame.with_columns(p_lapse=nb_p_zero(lapse, model.alpha_)), seconds


def send_time(
    ours: pl.DataFrame, visits: pl.DataFrame, members: pl.DataFrame, as_of: date, horizon: int
) -> dict[str, float]:
    """Share of members visiting within a day of ours and of the club's busiest-time send."""
    lead = int(Policy.model_fields["send_lead_hours"].default)
    at = datetime.combine(as_of, datetime.min.time())
    frame = members.join(ours, on="member_id", how="left")
    end = np.datetime64(as_of + timedelta(days=horizon - 1), "D")
    n = frame.height
    window = (np.full(n, np.datetime64(as_of, "D")), np.full(n, end))
    ours_at = send_at(
        at, lead, start=window[0], end=window[1],
        next_visit=frame["next_visit_date"].to_numpy().astype("datetime64[D]"),
        hour=frame["preferred_hour"].fill_null(-1).to_numpy().astype(np.int64),
    )  # fmt: skip
    before = visits.filter(pl.col("day") < as_of)
    busy = before.group_by(pl.col("day").dt.weekday().alias("wd"), "hour").agg(
        pl.col("baskets").sum()
    )
    top = busy.sort("baskets", descending=True).row(0, named=True)
    ahead = (top["wd"] - 1 - as_of.weekday()) % 7
    club_at = send_at(
        at, lead, start=window[0], end=window[1],
        next_visit=np.full(n, np.datetime64(as_of + timedelta(days=ahead), "D")),
        hour=np.full(n, top["hour"], dtype=np.int64),
    )  # fmt: skip
    moments = visits.filter(pl.col("day") >= as_of).select(
        "member_id",
        (pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=pl.col("hour"))).alias("ts"),
    )
    out = {}
    for name, sends in (("send_at_hit", ours_at), ("club_busiest_hit", club_at)):
        planned = frame.select("member_id").with_columns(
            send=pl.Series(sends).cast(pl.Datetime("us"))
        )
        near = (
            planned.join(moments, on="member_id")
            .filter((pl.col("ts") - pl.col("send")).abs() <= timedelta(days=1))
            .select("member_id")
            .unique()
        )
        out[name] = near.height / max(n, 1)
    return out


def weekday_hour_hits(
    ours: pl.DataFrame, visits: pl.DataFrame, truth: pl.DataFrame, as_of: date
) -> dict[str, float]:
    """How often the next visit's weekday and hour are the member's preferred ones (and the
    club's busiest)."""
    first = (
        visits.filter(pl.col("day") >= as_of)
        .sort("day", "hour")
        .group_by("member_id", maintain_order=True)
        .first()
        .select("member_id", (pl.col("day").dt.weekday() - 1).alias("wd"), "hour")
    )
    before = visits.filter(pl.col("day") < as_of)
    club_wd = (
        before.group_by((pl.col("day").dt.weekday() - 1).alias("wd"))
        .agg(pl.col("baskets").sum())
        .sort("baskets")
        .row(-1)[0]
    )
    club_hour = before.group_by("hour").agg(pl.col("baskets").sum()).sort("baskets").row(-1)[0]
    frame = truth.select("member_id").join(first, on="member_id").join(ours, on="member_id")
    return {
        "weekday_hit": _share(frame["wd"] == frame["preferred_weekday"]),
        "weekday_hit_club": _share(frame["wd"] == club_wd),
        "hour_hit": _share(frame["hour"] == frame["preferred_hour"]),
        "hour_hit_club": _share(frame["hour"] == club_hour),
    }


def _share(hits: pl.Series) -> float:
    return float(hits.cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]


def run_cut(club: ClubData, visits: pl.DataFrame, as_of: str, horizon: int) -> dict[str, Any]:
    """Every method's scores and ratios to BG/NBD at one cutoff and horizon."""
    history = History.at(club, as_of)
    day = history.as_of_date
    refs = reference_forecasts(visits.lazy(), day, horizon)
    members = refs["bgnbd"].select("member_id")
    truth = truth_at(visits.lazy(), members, day, horizon)
    ours, fit_s = timing_forecast(history, horizon)
    methods = {"visit_timing": ours, **refs}
    bgnbd_quiet = refs["bgnbd"].with_columns(p_lapse=pl.col("p_no_visit_56"))
    today_flag = ours.with_columns(p_lapse=pl.col("lapsing").cast(pl.Float64))
    result: dict[str, Any] = {
        "as_of": as_of,
        "horizon": horizon,
        "members": members.height,
        "fit_s": fit_s,
        "scores": {name: score(f, truth) for name, f in methods.items()},
        "ratios": {
            name: ratios(f, refs["bgnbd"], truth) for name, f in methods.items() if name != "bgnbd"
        },
        "bgnbd_p_no_visit_56_auc": score(bgnbd_quiet, truth)["lapse_auc"],
        "today_flag_auc": score(today_flag, truth)["lapse_auc"],
    }
    result |= weekday_hour_hits(ours, visits, truth, day)
    result |= send_time(ours, visits, members, day, horizon)
    return result


def synth_clubs(root: Path, seeds: list[int], members: int, seasonality: float) -> dict[str, Path]:
    """Synthetic clubs of 78 weeks from 2024-01-01 (made once per seed under ``root``): weekly
    routines, members joining and lapsing, and with ``seasonality`` a yearly cycle."""
    out = {}
    for seed in seeds:
        suffix = f"-season{seasonality:g}" if seasonality else ""
        path = root / f"seed{seed}{suffix}"
        if not path.exists():
            generate_club(
                path, members=members, products=500, weeks=78, seed=seed, seasonality=seasonality
            )
        out[f"synth{suffix}-{seed}"] = path
    return out


def summary_table(results: list[dict[str, Any]]) -> Table:
    """Mean ratio to BG/NBD over cutoffs and seeds, with the range, per club kind and horizon."""
    table = Table(title="Ratio to BG/NBD: mean over cutoffs/seeds [min-max of the per-cut ratios]")
    for column in ("club", "h", "method", "rmse", "poisson dev", "MAE likely", "Brier", "log loss"):
        table.add_column(column)
    groups: dict[tuple[str, int, str], list[dict[str, tuple[float, float, float]]]] = {}
    for r in results:
        kind = str(r["club"]).rsplit("-", 1)[0] if r["club"].startswith("synth") else "cj"
        kind += "-short" if r.get("short") else ""
        for method, values in r["ratios"].items():
            groups.setdefault((kind, int(r["horizon"]), method), []).append(values)
    for (club, h, method), cuts in sorted(groups.items()):
        cells = []
        for name in ("rmse", "poisson_deviance", "mae_likely", "brier", "log_loss"):
            values = [c[name][0] for c in cuts if name in c]
            cells.append(
                f"{np.mean(values):.3f} [{min(values):.3f}-{max(values):.3f}]" if values else ""
            )
        table.add_row(club, str(h), method, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cj", help="Complete Journey dataset directory")
    parser.add_argument("--synth", help="directory for the synthetic clubs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--synth-members", type=int, default=3000)
    parser.add_argument("--seasonality", type=float, default=0.0, help="of the synthetic clubs")
    parser.add_argument("--horizons", type=int, nargs="+", default=[7, 28, 91])
    parser.add_argument("--short", action="store_true", help="add the 90-day CJ history")
    parser.add_argument("--out", default="timing.json")
    args = parser.parse_args()

    runs: list[tuple[str, Path, tuple[str, ...]]] = []
    if args.cj:
        runs.append(("cj", Path(args.cj), CJ_CUTOFFS))
    if args.synth:
        for name, path in synth_clubs(
            Path(args.synth), args.seeds, args.synth_members, args.seasonality
        ).items():
            runs.append((name, path, SYNTH_CUTOFFS))
    results: list[dict[str, Any]] = []
    for name, path, cutoffs in runs:
        club = ClubData(path)
        visits = member_visits(club.transactions).collect()
        cuts = [(c, h, False) for c in cutoffs for h in args.horizons]
        if args.short and name == "cj":
            cuts.append((SHORT_CUT, 91, True))
        for as_of, h, short in cuts:
            r = run_cut(club, visits, as_of, h) | {"club": name, "short": short}
            results.append(r)
            ratio = r["ratios"]["visit_timing"]
            console.print(
                f"{name} {as_of} h={h}: members {r['members']}, fit {r['fit_s']:.1f}s; ours/BG-NBD "
                + ", ".join(f"{k} {v[0]:.3f} [{v[1]:.3f}-{v[2]:.3f}]" for k, v in ratio.items())
                + f"; lapse AUC ours {r['scores']['visit_timing']['lapse_auc']:.3f} vs P(alive) "
                f"{r['scores']['bgnbd']['lapse_auc']:.3f}; send hit {r['send_at_hit']:.3f} vs club "
                f"{r['club_busiest_hit']:.3f}"
            )
            Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    console.print(summary_table(results))


if __name__ == "__main__":
    main()
