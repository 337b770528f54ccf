"""What a decision tells the campaign tool: when to send it and why.

The reason's core is a polars expression computed once per plan row (:func:`reason_core`);
the track prefix and the send time are added to the decided rows only (:func:`reason`,
:func:`send_at`), by the same code in a batch run and a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray

__all__ = ["REASON_PREFIX", "reason", "reason_core", "send_at"]

REASON_PREFIX = {
    "explore": "something different: ",
    "onboarding": "welcome offer: ",
    "winback": "we miss you: ",
}
"""What a reason starts with, by the decision's track (``explore`` when explored)."""


def send_at(
    at: datetime,
    lead_hours: int,
    *,
    start: NDArray[np.datetime64],
    end: NDArray[np.datetime64],
    next_visit: NDArray[np.datetime64],
    hour: NDArray[np.int64],
) -> NDArray[np.datetime64]:
    """The member's predicted next visit (day, usual hour minus a lead), inside the offer window.

    Per decision: the day is the predicted next visit date (``NaT``: none) clamped to
    ``[max(at, start), end]``; the hour is the usual hour (``-1``: none, then ``at``'s hour)
    minus ``lead_hours``, within 0–23; never earlier than ``at``. Dates are ``datetime64[D]``;
    the result is ``datetime64[us]``.
    """
    today = np.datetime64(at.date(), "D")
    first_day = np.maximum(start.astype("datetime64[D]"), today)
    visit = next_visit.astype("datetime64[D]")
    day = np.minimum(np.maximum(np.where(np.isnat(visit), first_day, visit), first_day),
                     end.astype("datetime64[D]"))  # fmt: skip
    usual = np.where(hour >= 0, hour, at.hour + lead_hours)
    chosen = np.clip(usual - lead_hours, 0, 23).astype(np.int64)
    moment = day.astype("datetime64[us]") + chosen.astype("timedelta64[h]")
    out: NDArray[np.datetime64] = np.maximum(moment, np.datetime64(at, "us"))
    return out


def reason(tracks: Sequence[str], cores: Sequence[str]) -> list[str]:
    """Each decision's reason: its track's :data:`REASON_PREFIX` (``explore`` when explored),
    then :func:`reason_core`.

    e.g. "bought 7 times, last 19 days ago; usually every 14 days; 81 % would buy it anyway,
    +4 % with the offer (assumed)"; "welcome offer: new for you in CHEESE; 3 % would buy it
    anyway, +11 % with the offer".
    """
    return [REASON_PREFIX.get(t, "") + c for t, c in zip(tracks, cores, strict=True)]


def _days(column: str) -> pl.Expr:
    return pl.col(column).round(0).cast(pl.Int64).cast(pl.String)


def reason_core() -> pl.Expr:
    """The reason without its track prefix (``reason_core``): rhythm or discovery, then what
    the offer changes (see :func:`_change`)."""
    times = pl.col("bought_baskets")
    rhythm = pl.concat_str(
        pl.lit("bought "),
        times.cast(pl.String),
        pl.when(times == 1).then(pl.lit(" time")).otherwise(pl.lit(" times")),
        pl.when(pl.col("days_since_bought") < 0.5)
        .then(pl.lit(", last today"))
        .when(pl.col("days_since_bought") < 1.5)
        .then(pl.lit(", last yesterday"))
        .otherwise(
            pl.concat_str(pl.lit(", last "), _days("days_since_bought"), pl.lit(" days ago"))
        ),
        pl.when(pl.col("usual_gap_days").is_not_null())
        .then(pl.concat_str(pl.lit("; usually every "), _days("usual_gap_days"), pl.lit(" days")))
        .otherwise(pl.lit("")),
    )
    discovery = pl.concat_str(
        pl.lit("new for you"),
        pl.when(pl.col("category").is_not_null())
        .then(pl.concat_str(pl.lit(" in "), pl.col("category")))
        .otherwise(pl.lit("")),
        pl.when(pl.col("product").is_not_null())
        .then(pl.concat_str(pl.lit(": "), pl.col("product")))
        .otherwise(pl.lit("")),
    )
    return pl.concat_str(
        pl.when((times > 0) & pl.col("days_since_bought").is_not_null())
        .then(rhythm)
        .otherwise(discovery),
        _change(),
    ).alias("reason_core")


def _percent(column: str) -> pl.Expr:
    return (pl.col(column) * 100).round(0).cast(pl.Int64).cast(pl.String)


def _change() -> pl.Expr:
    """What the offer changes: "; 12 % would buy it anyway, +9 % with the offer".

    "(assumed)" follows the uplift where no randomized exposure measured it.
    """
    uplift = pl.col("uplift")
    return pl.concat_str(
        pl.lit("; "),
        _percent("p_buy"),
        pl.lit(" % would buy it anyway, "),
        pl.when(uplift >= 0).then(pl.lit("+")).otherwise(pl.lit("")),
        _percent("uplift"),
        pl.lit(" % with the offer"),
        pl.when(pl.col("uplift_measured")).then(pl.lit("")).otherwise(pl.lit(" (assumed)")),
    ).fill_null("")
