"""What a decision tells the campaign tool: when to send it and why (polars expressions)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

__all__ = ["REASON_PREFIX", "reason", "reason_core", "send_at"]

REASON_PREFIX = {
    "explore": "something different: ",
    "onboarding": "welcome offer: ",
    "winback": "we miss you: ",
}
"""What a reason starts with, by the decision's track (``explore`` when explored)."""


def send_at(at: datetime, lead_hours: int) -> pl.Expr:
    """The member's predicted next visit (day, usual hour minus a lead), inside the offer window.

    The day is the predicted next visit date clamped to ``[max(at, start_date), end_date]``;
    never earlier than ``at``. Members without a prediction get ``at``.
    """
    now = pl.lit(at)
    first_day = pl.max_horizontal(pl.lit(at.date()), pl.col("start_date"))
    day = pl.min_horizontal(
        pl.max_horizontal(pl.col("next_visit_date").fill_null(first_day), first_day),
        pl.col("end_date"),
    )
    hour = (pl.col("preferred_hour").fill_null(at.hour + lead_hours) - lead_hours).clip(0, 23)
    moment = day.cast(pl.Datetime("us")) + pl.duration(hours=hour)
    return pl.max_horizontal(moment, now).alias("send_at")


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


def reason() -> pl.Expr:
    """A short sentence: purchase rhythm for known products, discovery otherwise.

    e.g. "bought 7 times, last 19 days ago; usually every 14 days; 81 % would buy it anyway,
    +4 % with the offer (assumed)"; "new for you in CHEESE; 3 % would buy it anyway, +11 % with
    the offer"; prefixed "welcome offer: " (onboarding), "we miss you: " (win-back) or
    "something different: " (exploration), as in :data:`REASON_PREFIX`.
    """
    prefix = (
        pl.when(pl.col("explored")).then(pl.lit(REASON_PREFIX["explore"]))
        .when(pl.col("track") == "onboarding").then(pl.lit(REASON_PREFIX["onboarding"]))
        .when(pl.col("track") == "winback").then(pl.lit(REASON_PREFIX["winback"]))
        .otherwise(pl.lit(""))
    )  # fmt: skip
    return pl.concat_str(prefix, reason_core()).alias("reason")
