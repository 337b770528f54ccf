"""BG/NBD's forecast as features of :class:`~nbo.models.timing.VisitTiming`'s count models.

The classic four-parameter model already gets the population's heterogeneity and dropout
right; given its conditional expectation over the horizon (``btyd_expected``), its ratio to
the member's shrunk recent rate (``btyd_pace``) and P(alive), the boosted models only need
to learn what it misses (weekday routine, trends, seasonality). BG/NBD is fitted at the cut
from the visits before it, so every training cutoff sees only its past; fits are warm-started
from the previous one, and the cutoffs between two fits reuse the earlier fit's parameters
(never a later one's).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from nbo.models.btyd import BetaGeoNBD, rfm_summary

__all__ = ["BTYD_COLUMNS", "MAX_FITS", "btyd_features", "btyd_training_features", "fit_btyd"]

BTYD_COLUMNS = ("btyd_expected", "btyd_pace", "p_alive")
"""The columns :func:`btyd_features` adds (null for members without a visit before the cut;
the base rate, 1 and 1 on a cut with too few members to fit BG/NBD)."""

_MIN_OFFSET = 1e-4  # visits over the horizon: the Poisson model divides by it
_MIN_OFFSET_SHARE = 0.1  # of the recent rate

MAX_FITS = 6
"""BG/NBD fits over the training cutoffs at most; the cutoffs between reuse the earlier fit."""


def fit_btyd(
    visits: pl.LazyFrame, cut: date, start: dict[str, float] | None = None
) -> BetaGeoNBD | None:
    """BG/NBD fitted on the visits before ``cut`` (None: fewer than 20 members visited)."""
    summary = rfm_summary(visits, cut)
    if summary.height < 20:
        return None
    x, tx, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    return BetaGeoNBD().fit(x, tx, t, start=start)


def btyd_features(
    frame: pl.DataFrame,
    visits: pl.LazyFrame,
    cut: date,
    horizon_days: int,
    model: BetaGeoNBD | None,
) -> pl.DataFrame:
    """``frame`` (with ``member_id`` and ``base``) with BTYD_COLUMNS as of ``cut``."""
    summary = rfm_summary(visits, cut)
    if model is None or summary.height == 0:  # too few members: the base rate stands in
        return frame.drop(BTYD_COLUMNS, strict=False).with_columns(
            pl.col("base").cast(pl.Float64).alias("btyd_expected"),
            pl.lit(1.0).alias("btyd_pace"),
            pl.lit(1.0).alias("p_alive"),
        )
    x, tx, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    expected = model.expected_visits(float(horizon_days), x, tx, t)
    scored = summary.select(
        "member_id",
        pl.Series("btyd_expected", expected, dtype=pl.Float64),
        pl.Series("p_alive", model.p_alive(x, tx, t), dtype=pl.Float64),
    )
    return (
        frame.drop(BTYD_COLUMNS, strict=False)
        .join(scored, on="member_id", how="left")
        .with_columns((pl.col("btyd_expected") / pl.col("base")).alias("btyd_pace"))
        # the count models' offset: BG/NBD's expectation where it has one, but not below a
        # tenth of the recent rate: a member BG/NBD thinks gone may return, and a near-zero
        # offset would let the boosting blow the ratio up
        .with_columns(
            pl.max_horizontal(
                pl.coalesce(pl.col("btyd_expected").fill_nan(None), "base"),
                _MIN_OFFSET_SHARE * pl.col("base"),
                pl.lit(_MIN_OFFSET),
            ).alias("base")
        )
        .select(pl.exclude(BTYD_COLUMNS), *BTYD_COLUMNS)
    )


def btyd_training_features(
    train: pl.DataFrame, visits: pl.LazyFrame, cutoffs: list[date], horizon_days: int
) -> tuple[pl.DataFrame, dict[str, float] | None]:
    """BTYD_COLUMNS of every training example at its own cutoff; and the latest fit's params.

    ``cutoffs`` latest first, as :func:`~nbo.models.visit_windows.window_cutoffs` gives them.
    At most MAX_FITS fits, at evenly spread cutoffs including the earliest; each cutoff uses
    the fit at the latest fitted cutoff not after it.
    """
    step = max(1, -(-len(cutoffs) // MAX_FITS))
    fitted_at = set(cutoffs[::-1][::step])
    parts, model, params = [], None, None
    for cutoff in sorted(cutoffs):
        if cutoff in fitted_at:
            model = fit_btyd(visits, cutoff, params) or model
            params = model.params_ if model is not None else None
        rows = train.filter(pl.col("cutoff") == cutoff)
        parts.append(btyd_features(rows, visits, cutoff, horizon_days, model))
    out = pl.concat(parts).sort("cutoff", "member_id", descending=[True, False])
    return out, params
