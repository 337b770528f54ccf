"""Point-in-time contact state: what was sent and how members responded, before a moment."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from nbo.history import ContactState, InteractionStore
from nbo.history.contact import OFFER_EVENTS_SCHEMA, SENT_SCHEMA
from tests.history.conftest import T0, decision_frame, event


def offer_row(state: ContactState, member_id: int = 1, offer_id: str = "C1-a") -> dict[str, object]:
    rows = state.offer_events.filter(member_id=member_id, offer_id=offer_id).to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_empty_state_has_the_schemas() -> None:
    state = ContactState.empty()
    assert state.sent.schema == SENT_SCHEMA
    assert state.offer_events.schema == OFFER_EVENTS_SCHEMA
    assert state.sent.is_empty() and state.offer_events.is_empty()


def test_only_rows_strictly_before_at_and_within_the_lookback(store: InteractionStore) -> None:
    at = T0 + timedelta(days=10)
    store.record_decisions(
        decision_frame(
            {"decided_at": at - timedelta(microseconds=1), "channel": "sms"},
            {"decided_at": at},  # at `at`: not yet
            {"decided_at": at + timedelta(days=1)},  # in the future
            {"decided_at": at - timedelta(days=30)},  # on the edge of the lookback: in
            {"decided_at": at - timedelta(days=30, microseconds=1)},  # past it: out
        )
    )
    store.record_events(
        [
            event("e1", "exposure", 10 * 24 - 1),
            event("e2", "redemption", 10 * 24),  # at `at`
            event("e3", "dismissal", 11 * 24),
            event("e4", "exposure", -21 * 24),  # 31 days before `at`
        ]
    )
    for members in (None, [1]):
        state = store.contact_state(at, members, lookback_days=30)
        assert state.sent.schema == SENT_SCHEMA
        assert state.sent["decided_at"].to_list() == [
            at - timedelta(days=30),
            at - timedelta(microseconds=1),
        ]
        assert state.sent["channel"].to_list() == ["email", "sms"]
        assert offer_row(state) == {
            "member_id": 1,
            "offer_id": "C1-a",
            "exposures": 1,
            "ignored": 1,
            "redeemed": False,
            "dismissed": 0,
            "last_exposed_at": at - timedelta(hours=1),
        }
    later = store.contact_state(at + timedelta(days=2), [1])
    assert offer_row(later)["redeemed"] is True
    assert offer_row(later)["dismissed"] == 1


def test_ignored_counts_exposures_since_the_last_click(store: InteractionStore) -> None:
    store.record_events(
        [
            event("x1", "exposure", 0),
            event("x2", "exposure", 1),
            event("c1", "click", 2),
            event("x3", "exposure", 3),
            event("d1", "dismissal", 4),  # a dismissal answers nothing: the count goes on
            event("x4", "exposure", 5),
            event("y1", "exposure", 1, offer_id="C1-b"),
        ]
    )
    at = T0 + timedelta(days=1)
    for members in (None, [1]):
        state = store.contact_state(at, members)
        assert offer_row(state) | {"last_exposed_at": None} == {
            "member_id": 1,
            "offer_id": "C1-a",
            "exposures": 4,
            "ignored": 2,
            "redeemed": False,
            "dismissed": 1,
            "last_exposed_at": None,
        }
        assert offer_row(state)["last_exposed_at"] == T0 + timedelta(hours=5)
        assert offer_row(state, offer_id="C1-b")["ignored"] == 1
    # before the click every exposure so far was ignored
    assert offer_row(store.contact_state(T0 + timedelta(hours=2), [1]))["ignored"] == 2


def test_redemption_resets_ignored_and_sets_redeemed(store: InteractionStore) -> None:
    store.record_events(
        [
            event("x1", "exposure", 0),
            event("r1", "redemption", 1),
            event("x2", "exposure", 1),  # at the same moment as the redemption: answered
        ]
    )
    row = offer_row(store.contact_state(T0 + timedelta(days=1), [1]))
    assert (row["exposures"], row["ignored"], row["redeemed"]) == (2, 0, True)


def test_member_filter(store: InteractionStore) -> None:
    store.record_decisions(decision_frame({"member_id": 1}, {"member_id": 2}, {"member_id": 3}))
    store.record_events([event(f"e{m}", "exposure", 1, member_id=m) for m in (1, 2, 3)])
    at = T0 + timedelta(days=1)
    state = store.contact_state(at, [3, 1, 3])
    assert state.sent["member_id"].to_list() == [1, 3]
    assert state.offer_events["member_id"].to_list() == [1, 3]
    nobody = store.contact_state(at, [])
    assert nobody.sent.is_empty() and nobody.offer_events.schema == OFFER_EVENTS_SCHEMA
    stranger = store.contact_state(at, [99])
    assert stranger.sent.schema == SENT_SCHEMA and stranger.sent.is_empty()
    assert stranger.offer_events.schema == OFFER_EVENTS_SCHEMA
    assert store.contact_state(at).sent["member_id"].to_list() == [1, 2, 3]


def test_long_member_lists_agree_with_the_whole_club(store: InteractionStore) -> None:
    """A long member list is read in pieces of 10,000 members; a short one in one piece."""
    members = list(range(12_000))
    kinds = ["exposure", "click", "exposure", "redemption", "dismissal", "exposure"]
    store.record_events(
        [
            event(f"e{m}-{i}", kind, hours=i, member_id=m, offer_id=f"o{m % 3}")
            for m in members[::7]
            for i, kind in enumerate(kinds[: m % 6 + 1])
        ]
    )
    store.record_decisions(
        decision_frame(
            *({"member_id": m, "decided_at": T0 + timedelta(minutes=m % 60)} for m in members[::5])
        )
    )
    at = T0 + timedelta(hours=4)
    whole = store.contact_state(at)
    listed = store.contact_state(at, members)
    assert listed.sent.equals(whole.sent)
    assert listed.offer_events.equals(whole.offer_events)
    few = [m for m in members[:2000:7]][:500]
    short = store.contact_state(at, few)
    assert short.offer_events.equals(whole.offer_events.filter(pl.col("member_id").is_in(few)))
    assert short.sent.equals(whole.sent.filter(pl.col("member_id").is_in(few)))


def test_lookback_must_not_be_negative(store: InteractionStore) -> None:
    with pytest.raises(ValueError, match="lookback_days"):
        store.contact_state(datetime(2024, 1, 1), [1], lookback_days=-1)
