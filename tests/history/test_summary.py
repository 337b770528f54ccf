"""The one offer-event summary (issue 15): equal to the rule written out in plain Python."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from nbo.history import EVENT_TYPES
from nbo.history.contact import OFFER_EVENTS_SCHEMA, summarise_offer_events
from nbo.history.summary import EVENT_CODES, summarise_events
from tests.history.conftest import T0

Row = tuple[int, str, str, datetime]  # member_id, offer_id, event_type, ts
Summary = dict[tuple[int, str], dict[str, Any]]


def plain_summary(rows: list[Row]) -> Summary:
    """The rule as the docstring of nbo.history.summary states it, one pair at a time."""
    seen: dict[tuple[int, str], list[tuple[str, datetime]]] = defaultdict(list)
    for member_id, offer_id, kind, ts in rows:
        seen[member_id, offer_id].append((kind, ts))
    summary = {}
    for key, pair_events in seen.items():
        exposed = [ts for kind, ts in pair_events if kind == "exposure"]
        answered = [ts for kind, ts in pair_events if kind in ("click", "redemption")]
        last_answered = max(answered, default=None)
        summary[key] = {
            "exposures": len(exposed),
            "ignored": sum(1 for ts in exposed if last_answered is None or ts > last_answered),
            "redeemed": any(kind == "redemption" for kind, _ in pair_events),
            "dismissed": sum(1 for kind, _ in pair_events if kind == "dismissal"),
            "last_exposed_at": max(exposed, default=None),
        }
    return summary


# few members, offers and distinct moments, so ties and repeats are common
ROWS = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 10**12]),
        st.sampled_from(["a", "b", "é"]),
        st.sampled_from(EVENT_TYPES),
        st.integers(min_value=0, max_value=6).map(lambda step: T0 + timedelta(hours=step)),
    ),
    max_size=40,
)


def kernel_summary(rows: list[Row], pair_codes: dict[tuple[int, str], int]) -> Summary:
    """``summarise_events`` on ``rows`` as given, with the caller's codes for the pairs."""
    pair_count = max(pair_codes.values(), default=-1) + 1
    summary = summarise_events(
        [pair_codes[m, o] for m, o, _, _ in rows],
        np.array([EVENT_CODES[kind] for _, _, kind, _ in rows], dtype=np.int8),
        np.array([ts for _, _, _, ts in rows], dtype="datetime64[us]"),
        pair_count,
    )
    out = {}
    for key, code in pair_codes.items():
        last = summary.last_exposed_at[code]
        out[key] = {
            "exposures": int(summary.exposures[code]),
            "ignored": int(summary.ignored[code]),
            "redeemed": bool(summary.redeemed[code]),
            "dismissed": int(summary.dismissed[code]),
            "last_exposed_at": None if np.isnat(last) else last.astype(datetime),
        }
    return out


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 2**32 - 1))
def test_the_summary_is_the_plain_rule_in_any_row_order_and_coding(
    rows: list[Row], seed: int
) -> None:
    shuffle = random.Random(seed)
    rows = shuffle.sample(rows, len(rows))
    keys = sorted({(m, o) for m, o, _, _ in rows})
    codes = dict(zip(keys, shuffle.sample(range(len(keys)), len(keys)), strict=True))
    assert kernel_summary(rows, codes) == plain_summary(rows)


@settings(max_examples=150, deadline=None)
@given(rows=ROWS)
def test_summarise_offer_events_is_the_plain_rule_sorted_by_member_and_offer(
    rows: list[Row],
) -> None:
    frame = pl.DataFrame(
        rows,
        schema={
            "member_id": pl.Int64(),
            "offer_id": pl.String(),
            "event_type": pl.String(),
            "ts": pl.Datetime("us"),
        },
        orient="row",
    )
    summarised = summarise_offer_events(frame)
    assert summarised.schema == OFFER_EVENTS_SCHEMA
    got = {(row.pop("member_id"), row.pop("offer_id")): row for row in summarised.to_dicts()}
    assert got == plain_summary(rows)
    assert list(got) == sorted(got)


def test_ties_an_exposure_at_the_moment_of_a_click_or_redemption_is_answered() -> None:
    at = T0 + timedelta(hours=1)
    rows: list[Row] = [
        (1, "a", "exposure", T0),
        (1, "a", "click", at),
        (1, "a", "exposure", at),  # with the click: answered
        (1, "b", "redemption", at),
        (1, "b", "exposure", at),  # with the redemption: answered
        (1, "c", "dismissal", at),
        (1, "c", "exposure", at),  # a dismissal answers nothing
        (1, "c", "exposure", T0),
    ]
    summary = kernel_summary(rows, {(1, "a"): 0, (1, "b"): 1, (1, "c"): 2})
    assert summary[1, "a"]["ignored"] == 0
    assert (summary[1, "b"]["ignored"], summary[1, "b"]["redeemed"]) == (0, True)
    assert (summary[1, "c"]["ignored"], summary[1, "c"]["dismissed"]) == (2, 1)
    assert summary == plain_summary(rows)


def test_a_code_without_rows_and_no_rows_at_all() -> None:
    rows: list[Row] = [(1, "a", "click", T0)]
    nothing = {
        "exposures": 0,
        "ignored": 0,
        "redeemed": False,
        "dismissed": 0,
        "last_exposed_at": None,
    }
    summary = kernel_summary(rows, {(1, "a"): 1, (9, "unused"): 0})
    assert summary == {(1, "a"): nothing, (9, "unused"): nothing}  # a click alone: no exposure
    assert kernel_summary([], {}) == {}
    empty = summarise_offer_events(
        pl.DataFrame(schema={"member_id": pl.Int64, "offer_id": pl.String,
                             "event_type": pl.String, "ts": pl.Datetime("us")})
    )  # fmt: skip
    assert empty.schema == OFFER_EVENTS_SCHEMA and empty.is_empty()
