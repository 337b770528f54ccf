"""Visit forecasts scored by what each output claims to be, beside the classics.

One cut of a club: the members who visited before ``as_of`` (the population BG/NBD and
Pareto/NBD describe), their forecasts from each method, and the truth from the full club.
:func:`reference_forecasts` gives the classics' and a naive rate's forecasts in the shape of
:class:`~nbo.models.timing.VisitTiming`'s output; :func:`score` turns any of them into proper
scores:

- ``expected_visits``: RMSE and mean Poisson deviance;
- ``likely_visits``: MAE;
- ``p_visit``: Brier score and log loss per member-day over the first ``P_VISIT_DAYS`` days;
- ``next_visit_date``: mean absolute error in days among members who return;
- ``p_lapse`` (P(no visit in the next 8 weeks)): ROC AUC against "no visit in 8 weeks".

Ratios to BG/NBD with a paired bootstrap interval over members come from :func:`ratios`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.stats import poisson

from nbo.evaluation.metrics import auc, ratio_interval
from nbo.features.history import History
from nbo.features.visits import member_visits, visits_between
from nbo.models.btyd import BetaGeoNBD, ParetoNBD, rfm_summary
from nbo.models.timing import P_VISIT_DAYS, VisitTiming
from nbo.models.visit_counts import nb_p_zero
from nbo.models.visit_days import median_days

__all__ = [
    "LAPSE_DAYS",
    "ratios",
    "reference_forecasts",
    "reliability",
    "score",
    "timing_evaluation",
    "timing_forecast",
    "timing_scores",
    "truth_at",
    "unit_scores",
]

LAPSE_DAYS = 56
"""The lapsing score is P(no visit in the next 8 weeks)."""

_EPS = 1e-6


def truth_at(
    visits: pl.LazyFrame, members: pl.DataFrame, as_of: date, horizon: int
) -> pl.DataFrame:
    """Per member of ``members``: ``visits`` in the horizon, ``first_after`` (next visit
    day, null if none in the data), ``visited`` days (members × P_VISIT_DAYS, as a list) and
    ``lapsed`` (no visit in LAPSE_DAYS). ``visits`` is member_visits of the full club."""
    day = pl.col("day")
    after = visits.filter(day >= as_of)
    days = (
        after.filter(day < as_of + timedelta(days=P_VISIT_DAYS))
        .select("member_id", (day - pl.lit(as_of)).dt.total_days().alias("d"))
        .unique()
        .group_by("member_id")
        .agg(pl.col("d"))
    )
    first = after.group_by("member_id").agg(day.min().alias("first_after"))
    frame = (
        members.select("member_id")
        .lazy()
        .join(visits_between(visits, as_of, horizon), on="member_id", how="left")
        .join(
            visits_between(visits, as_of, LAPSE_DAYS).rename({"visits": "_v56"}),
            on="member_id",
            how="left",
        )
        .join(first, on="member_id", how="left")
        .join(days, on="member_id", how="left")
        .with_columns(
            pl.col("visits").fill_null(0),
            (pl.col("_v56").fill_null(0) == 0).alias("lapsed"),
        )
        .drop("_v56")
        .sort("member_id")
        .collect()
    )
    return frame


def visited_matrix(truth: pl.DataFrame) -> np.ndarray:
    """Members × P_VISIT_DAYS: 1 where the member visited on ``as_of + d``."""
    matrix = np.zeros((truth.height, P_VISIT_DAYS))
    exploded = truth.select(pl.int_range(pl.len()).alias("row"), "d").explode("d").drop_nulls()
    matrix[exploded["row"].to_numpy(), exploded["d"].to_numpy()] = 1.0
    return matrix


def reference_forecasts(visits: pl.LazyFrame, as_of: date, horizon: int) -> dict[str, pl.DataFrame]:
    """Forecasts of the naive rate, BG/NBD and Pareto/NBD for every member who visited.

    Each frame: ``member_id, expected_visits, likely_visits, p_visit, next_visit_date,
    p_lapse`` (sorted by member). The naive rate is visits over the last 91 days (or since
    the first visit, if later) per day; BG/NBD's ``p_visit`` on day ``d`` is ``1 - exp(-(E[Y(d
    + 1)] - E[Y(d)]))``, its next visit the median of its time to the next visit, its
    ``p_lapse`` ``1 - P(alive)`` (the classic lapsing score) — its P(no visit in 8 weeks) is
    ``p_no_visit_56``. ``likely_visits`` of the classics is the Poisson median of their mean.
    """
    summary = rfm_summary(visits, as_of)
    x, tx, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    members = summary.select("member_id")
    recent = (
        visits.filter((pl.col("day") < as_of) & (pl.col("day") >= as_of - timedelta(days=91)))
        .group_by("member_id")
        .agg(pl.col("baskets").sum().alias("v91"))
    )
    v91 = members.join(recent.collect(), on="member_id", how="left")["v91"].fill_null(0).to_numpy()
    rate = v91 / np.minimum(91.0, t)
    days = np.arange(P_VISIT_DAYS + 1, dtype=float)
    out = {
        "naive": _frame(
            members,
            as_of,
            rate * horizon,
            1 - np.exp(-rate[:, None] * np.ones(P_VISIT_DAYS)),
            np.exp(-rate * LAPSE_DAYS),
        )
    }
    bg = BetaGeoNBD().fit(x, tx, t)
    cumulative = np.stack(
        [bg.expected_visits(d, x, tx, t) if d else np.zeros(len(x)) for d in days], axis=1
    )
    quiet = bg.p_no_visit(np.arange(1.0, 366.0), x, tx, t)
    out["bgnbd"] = _frame(
        members,
        as_of,
        bg.expected_visits(float(horizon), x, tx, t),
        1 - np.exp(-np.diff(cumulative, axis=1)),
        1 - bg.p_alive(x, tx, t),
        next_days=np.where((quiet <= 0.5).any(axis=1), np.argmax(quiet <= 0.5, axis=1), 365),
    ).with_columns(pl.Series("p_no_visit_56", quiet[:, LAPSE_DAYS - 1]))
    pareto = ParetoNBD().fit(x, tx, t)
    out["pareto_nbd"] = _frame(
        members,
        as_of,
        pareto.expected_visits(float(horizon), x, tx, t),
        None,
        1 - pareto.p_alive(x, tx, t),
    )
    return out


def _frame(
    members: pl.DataFrame,
    as_of: date,
    expected: np.ndarray,
    p_visit: np.ndarray | None,
    p_lapse: np.ndarray,
    next_days: np.ndarray | None = None,
) -> pl.DataFrame:
    if next_days is None and p_visit is not None:
        next_days = median_days(p_visit)
    columns: dict[str, object] = {
        "expected_visits": pl.Series(expected, dtype=pl.Float64),
        "likely_visits": pl.Series(poisson.median(np.maximum(expected, _EPS)), dtype=pl.Int64),
        "p_lapse": pl.Series(p_lapse, dtype=pl.Float64),
    }
    if p_visit is not None:
        columns["p_visit"] = pl.Series(p_visit.tolist(), dtype=pl.List(pl.Float64))
    if next_days is not None:
        columns["next_visit_date"] = pl.Series(
            [as_of + timedelta(days=int(d)) for d in next_days], dtype=pl.Date
        )
    return members.with_columns(**columns)  # type: ignore[arg-type]


def unit_scores(forecast: pl.DataFrame, truth: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per-member losses of one method (rows in ``truth``'s order): squared error, Poisson
    deviance, absolute error, Brier and log loss (mean over days), days off the next visit."""
    frame = truth.select("member_id").join(forecast, on="member_id", how="left")
    y = truth["visits"].to_numpy().astype(float)
    mu = np.maximum(frame["expected_visits"].fill_null(0.0).to_numpy(), _EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        deviance = 2 * (np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
    units = {
        "sq_error": (y - mu) ** 2,
        "poisson_deviance": deviance,
        "abs_error_likely": np.abs(y - frame["likely_visits"].fill_null(0).to_numpy()),
    }
    if "p_visit" in frame.columns:
        p = np.clip(np.stack(frame["p_visit"].to_list()), _EPS, 1 - _EPS)[:, :P_VISIT_DAYS]
        seen = visited_matrix(truth)
        units["brier"] = ((p - seen) ** 2).mean(axis=1)
        units["log_loss"] = -(seen * np.log(p) + (1 - seen) * np.log(1 - p)).mean(axis=1)
    if "next_visit_date" in frame.columns:
        off = (truth["first_after"] - frame["next_visit_date"]).dt.total_days().abs()
        units["next_visit_days"] = off.to_numpy().astype(float)  # NaN: did not return
    return units


def score(forecast: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    """The proper scores of one method's forecast (see the module docstring)."""
    units = unit_scores(forecast, truth)
    out = {
        "rmse": float(np.sqrt(units["sq_error"].mean())),
        "poisson_deviance": float(units["poisson_deviance"].mean()),
        "mae_likely": float(units["abs_error_likely"].mean()),
    }
    for name in ("brier", "log_loss"):
        if name in units:
            out[name] = float(units[name].mean())
    if "next_visit_days" in units:
        out["next_visit_days"] = float(np.nanmean(units["next_visit_days"]))
    lapse = truth.select("member_id", "lapsed").join(forecast, on="member_id", how="left")
    out["lapse_auc"] = auc(lapse["lapsed"].to_numpy(), lapse["p_lapse"].fill_null(0.5).to_numpy())
    return out


def ratios(
    forecast: pl.DataFrame, reference: pl.DataFrame, truth: pl.DataFrame
) -> dict[str, tuple[float, float, float]]:
    """Each score's ratio to the reference's with a 95 % paired bootstrap interval over
    members: ``{score: (ratio, low, high)}``; RMSE's from the MSE ratio's square root."""
    ours, theirs = unit_scores(forecast, truth), unit_scores(reference, truth)
    names = {
        "rmse": "sq_error",
        "poisson_deviance": "poisson_deviance",
        "mae_likely": "abs_error_likely",
        "brier": "brier",
        "log_loss": "log_loss",
        "next_visit_days": "next_visit_days",
    }
    out = {}
    for name, unit in names.items():
        if unit not in ours or unit not in theirs:
            continue
        a, b = ours[unit], theirs[unit]
        keep = ~(np.isnan(a) | np.isnan(b))
        a, b = a[keep], b[keep]
        ratio = float(a.sum() / b.sum()) if b.sum() else float("nan")
        low, high = ratio_interval(a, b, draws=500)
        if name == "rmse":
            ratio, low, high = np.sqrt(ratio), np.sqrt(low), np.sqrt(high)
        out[name] = (float(ratio), float(low), float(high))
    return out


def timing_forecast(model: VisitTiming, history: History, horizon: int) -> pl.DataFrame:
    """The model's forecast over ``horizon`` days with ``p_lapse``, P(no visit in 8 weeks)
    under its negative binomial."""
    frame = model.predict(history, horizon_days=horizon)
    lapse = model.predict(history, horizon_days=LAPSE_DAYS)["expected_visits"].to_numpy()
    return frame.with_columns(p_lapse=nb_p_zero(lapse, model.alpha_))


def reliability(forecast: pl.DataFrame, truth: pl.DataFrame, bins: int = 10) -> pl.DataFrame:
    """``p_visit``'s reliability over member-days (the first :data:`P_VISIT_DAYS` days):
    ``bin, predicted, observed, member_days`` per decile of the predicted probability."""
    frame = truth.select("member_id").join(forecast, on="member_id", how="left")
    p = np.stack(frame["p_visit"].to_list())[:, :P_VISIT_DAYS].ravel()
    seen = visited_matrix(truth)[:, :P_VISIT_DAYS].ravel()
    edges = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]) if p.size else np.array([])
    return (
        pl.DataFrame({"bin": np.searchsorted(edges, p, side="right"), "p": p, "seen": seen})
        .group_by("bin")
        .agg(
            predicted=pl.col("p").mean(),
            observed=pl.col("seen").cast(pl.Float64).mean(),
            member_days=pl.len(),
        )
        .sort("bin")
    )


def timing_evaluation(
    model: VisitTiming, history: History, horizon: int
) -> tuple[dict[str, float], pl.DataFrame]:
    """The model's scores over ``horizon`` days from ``history.as_of`` and their ratios to
    BG/NBD's (fitted here as of the same day), flat for MLflow: ``visit_<score>``,
    ``visit_<score>_bgnbd`` and ``visit_<score>_ratio_bgnbd``; and the :func:`reliability` of
    both ``p_visit`` forecasts (column ``method``: ``nbo``, ``BG/NBD``). The members are
    those who visited before ``as_of``, the truth the club's later receipts."""
    visits = member_visits(history.club.transactions).collect().lazy()
    reference = reference_forecasts(visits, history.as_of_date, horizon)["bgnbd"]
    truth = truth_at(visits, reference.select("member_id"), history.as_of_date, horizon)
    ours = timing_forecast(model, history, horizon)
    mine, theirs = score(ours, truth), score(reference, truth)
    out = {f"visit_{k}": v for k, v in mine.items()}
    out |= {f"visit_{k}_bgnbd": v for k, v in theirs.items()}
    out |= {f"visit_{k}_ratio_bgnbd": mine[k] / theirs[k] for k in mine if theirs.get(k)}
    curves = pl.concat(
        [
            reliability(frame, truth).with_columns(method=pl.lit(name))
            for name, frame in (("nbo", ours), ("BG/NBD", reference))
            if truth.height and "p_visit" in frame.columns
        ]
        or [pl.DataFrame(schema={"method": pl.String})]
    )
    return out, curves


def timing_scores(model: VisitTiming, history: History, horizon: int) -> dict[str, float]:
    """The scores of :func:`timing_evaluation` alone."""
    return timing_evaluation(model, history, horizon)[0]
