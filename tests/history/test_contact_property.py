"""Property: both reads from the store, contact_state and the online member_contacts, summarise
the events of their window as the plain-Python rule does (``plain_summary``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from nbo.history import EVENT_TYPES, InteractionStore
from nbo.history.schema import events
from tests.history.conftest import T0
from tests.history.test_summary import plain_summary

# few members, offers and distinct moments, so ties and repeats are common
EVENTS = st.lists(
    st.tuples(
        st.sampled_from([1, 2]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(EVENT_TYPES),
        st.integers(min_value=0, max_value=12),  # steps of 6 hours: three days
    ),
    max_size=30,
)


def expected_summary(
    rows: list[tuple[int, str, str, int]], at: datetime, lookback_days: int
) -> dict[tuple[int, str], dict[str, Any]]:
    """The plain rule on the rows in ``[at - lookback_days, at)``."""
    since = at - timedelta(days=lookback_days)
    moments = [(m, o, kind, T0 + timedelta(hours=6 * step)) for m, o, kind, step in rows]
    return plain_summary([row for row in moments if since <= row[3] < at])


def _store_only(store: InteractionStore, rows: list[tuple[int, str, str, int]]) -> None:
    """Empty the events table, then store ``rows`` (member, offer, kind, 6-hour step)."""
    with store.engine.begin() as connection:
        connection.execute(delete(events))
    store.record_events(
        [
            {
                "event_id": f"e{i}",
                "member_id": member_id,
                "offer_id": offer_id,
                "event_type": kind,
                "ts": T0 + timedelta(hours=6 * step),
            }
            for i, (member_id, offer_id, kind, step) in enumerate(rows)
        ]
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the table is emptied per example
)
@given(
    rows=EVENTS,
    at_step=st.integers(min_value=0, max_value=13),
    lookback_days=st.integers(min_value=0, max_value=3),
)
def test_summary_matches_python(
    store: InteractionStore,
    rows: list[tuple[int, str, str, int]],
    at_step: int,
    lookback_days: int,
) -> None:
    _store_only(store, rows)
    at = T0 + timedelta(hours=6 * at_step)  # both window edges fall on event times
    expected = expected_summary(rows, at, lookback_days)
    for members in (None, [1, 2]):  # the whole club's scan, then the members' lookup
        state = store.contact_state(at, members, lookback_days=lookback_days)
        got = {
            (row.pop("member_id"), row.pop("offer_id")): row
            for row in state.offer_events.to_dicts()
        }
        assert got == expected
        assert list(got) == sorted(got)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the table is emptied per example
)
@given(rows=EVENTS, at_step=st.integers(min_value=0, max_value=13))
def test_the_online_read_summarises_events_as_contact_state(
    store: InteractionStore, rows: list[tuple[int, str, str, int]], at_step: int
) -> None:
    _store_only(store, rows)
    at = T0 + timedelta(hours=6 * at_step)
    online = store.member_contacts([1, 2, 3], at=at, sent_before=at)
    expected = expected_summary(rows, at, 365)
    got = {
        (m, o): (ignored, redeemed)
        for m, contacts in online.items()
        for o, (ignored, redeemed) in contacts.offer_events.items()
    }
    assert got == {k: (v["ignored"], v["redeemed"]) for k, v in expected.items()}
