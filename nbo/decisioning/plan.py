"""A day's decision plan: every member's eligible rows for one channel, as arrays by member.

:class:`Plan` holds :func:`~nbo.decisioning.prepare.plan_static` rows in the engine's order as
NumPy arrays with a per-member offset, so :func:`~nbo.decisioning.online.decide_member` reads a
member's rows by slicing, without a polars query per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.present import reason_core

__all__ = ["PLAN_COLUMNS", "Plan"]

PLAN_COLUMNS = (
    "offer_id", "campaign_id", "category", "is_new", "p_redeem", "p_buy", "uplift",
    "uplift_measured", "value", "cost", "expected_value", "expected_cost", "incremental_value",
    "priority", "cost_cap", "track", "cold_start", "start_date", "end_date", "next_visit_date",
    "preferred_hour", "reason_core",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """plan_static rows of every member for one day and channel, as arrays by member.

    Rows are ordered by member, then priority (highest first), then offer id — the engine's
    order — so a member's rows are ``starts[i]:starts[i + 1]`` for ``member_ids[i]``. Offers,
    campaigns and categories are coded once (``offer_code`` …) so a request does no string work
    on rows it does not return.
    """

    day: date
    channel: str
    member_ids: NDArray[np.int64]
    starts: NDArray[np.int64]
    columns: dict[str, NDArray[Any]]
    offer_codes: dict[str, int]
    campaign_ids: list[str]

    @staticmethod
    def build(
        static: pl.DataFrame,
        *,
        day: date,
        channel: str,
        odds: pl.DataFrame | None = None,
        campaigns: list[str] | None = None,
    ) -> Plan:
        """From :func:`~nbo.decisioning.prepare.plan_static` rows (collected) of one day;
        ``odds`` (offer_id, odds) are the exploration matching odds; ``campaigns`` fixes the
        campaign codes (a chunk of a club whose budgets are indexed by the club's campaigns;
        default: the campaigns of ``static``, sorted)."""
        if campaigns is None:
            campaigns = static["campaign_id"].unique().sort().to_list()
        frame = static.with_columns(reason_core()).sort(
            ["member_id", "priority", "offer_id"], descending=[False, True, False]
        )
        if odds is not None:
            frame = frame.join(
                odds.select("offer_id", "odds"), on="offer_id", how="left", maintain_order="left"
            )
        else:
            frame = frame.with_columns(odds=pl.lit(None, pl.Float64))
        frame = frame.with_columns(
            pl.col("odds").fill_null(0.0),
            offer_code=pl.col("offer_id").rank("dense").cast(pl.Int64) - 1,
            campaign_code=pl.col("campaign_id").replace_strict(
                campaigns, list(range(len(campaigns))), return_dtype=pl.Int64
            ),
            category_code=pl.col("category").fill_null("").rank("dense").cast(pl.Int64) - 1,
        )
        members = frame["member_id"].to_numpy().astype(np.int64)
        member_ids, first = np.unique(members, return_index=True)
        starts = np.r_[first, members.size].astype(np.int64)
        columns: dict[str, NDArray[Any]] = {}
        for name in (*PLAN_COLUMNS, "odds", "offer_code", "campaign_code", "category_code"):
            series = frame[name]
            if series.dtype == pl.Int64 and name.endswith("_code"):
                columns[name] = series.to_numpy()
            elif series.dtype == pl.Date:  # datetime64[D], NaT for none
                columns[name] = series.to_numpy().astype("datetime64[D]")
            elif name == "preferred_hour":  # -1 for none
                columns[name] = series.cast(pl.Int64).fill_null(-1).to_numpy()
            elif series.dtype == pl.Boolean:
                columns[name] = series.fill_null(False).to_numpy()
            elif series.dtype in (pl.Float64, pl.Float32):
                columns[name] = series.cast(pl.Float64).to_numpy()
            else:  # strings: Python objects, read only for chosen rows
                columns[name] = np.array(series.to_list(), dtype=object)
        codes = frame.select("offer_id", "offer_code").unique()
        return Plan(
            day, channel, member_ids, starts, columns,
            offer_codes=dict(codes.iter_rows()),
            campaign_ids=list(campaigns),
        )  # fmt: skip

    def rows_of(self, member_id: int) -> slice:
        """The slice of ``member_id``'s rows (empty when the plan has none)."""
        i = int(np.searchsorted(self.member_ids, member_id))
        if i < self.member_ids.size and self.member_ids[i] == member_id:
            return slice(int(self.starts[i]), int(self.starts[i + 1]))
        return slice(0, 0)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])
