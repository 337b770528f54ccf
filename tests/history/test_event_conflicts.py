"""An event_id is one event (issue 18, item 3): sent again with the same payload it is a
duplicate, with another it is refused, and so is its batch, on every backend."""

from __future__ import annotations

import pytest

from nbo.history import InteractionStore
from nbo.history.events import PAYLOAD, EventConflictError
from tests.history.conftest import event


def test_the_same_payload_again_is_a_duplicate(store: InteractionStore) -> None:
    batch = [event("e1", "click", 1), event("e2", "redemption", 2) | {"amount": 0.75}]
    assert store.record_events(batch).inserted == 2
    again = store.record_events([*batch, batch[0]])
    assert (again.inserted, again.duplicates) == (0, 3)


@pytest.mark.parametrize("field", PAYLOAD)
def test_another_payload_under_a_known_id_refuses_the_batch(
    store: InteractionStore, field: str
) -> None:
    stored = event("e1", "redemption", 1) | {"amount": 0.75, "channel": "email"}
    store.record_events([stored])
    other = {
        "event_type": "click", "member_id": 2, "offer_id": "C9-z", "decision_id": "d-9",
        "channel": "sms", "ts": stored["ts"].replace(second=1), "amount": 0.5,
    }  # fmt: skip
    changed = stored | {field: other[field]}
    with pytest.raises(EventConflictError) as raised:
        store.record_events([event("e-new", "click", 3), changed])
    assert raised.value.event_ids == ["e1"] and "'e1'" in str(raised.value)
    assert store.events_for(1)["event_id"].to_list() == ["e1"]  # e-new was not stored
