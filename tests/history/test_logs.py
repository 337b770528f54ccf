"""Bulk reads for evaluation: what the experiment report is handed (``experiment_log``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nbo.history import InteractionStore
from nbo.history.logs import REDEMPTION_SCHEMA, experiment_log
from tests.history.conftest import T0, decision_frame, event


def _online(decision_id: str, member_id: int) -> dict[str, Any]:
    """A service decision (it carries an arm)."""
    row = decision_frame({"member_id": member_id, "campaign_id": "C1", "arm": "champion"})
    return row.row(0, named=True) | {"decision_id": decision_id}


def test_experiment_log_reads_arms_service_decisions_and_redemptions_since(
    store: InteractionStore,
) -> None:
    day = timedelta(days=1)
    assigned = [
        {"member_id": 1, "arm": "holdout", "assigned_at": T0 - 2 * day},  # before since
        {"member_id": 2, "arm": "champion", "assigned_at": T0},
        {"member_id": 3, "arm": "holdout", "assigned_at": T0 + day},
    ]
    store.record_online([_online("s1", 2), _online("s2", 2), _online("s3", 3)], assigned)
    store.record_decisions(decision_frame({"member_id": 2, "decision_id": "batch"}))  # no arm
    store.record_events(
        [
            event("old", "redemption", -30, member_id=2) | {"amount": 9.0},
            event("new", "redemption", 30, member_id=2) | {"amount": 1.5},
            event("seen", "exposure", 31, member_id=3),
        ]
    )
    logged = experiment_log(store.engine, T0.date())
    assert logged.assignments.sort("member_id").rows() == [
        (2, "champion", T0),
        (3, "holdout", T0 + day),
    ]
    assert sorted(logged.decisions.rows()) == [(2, 2), (3, 1)]  # batch runs do not count
    assert logged.redemptions.schema == REDEMPTION_SCHEMA
    assert logged.redemptions.select("member_id", "campaign_id", "amount").rows() == [
        (2, "C1", 1.5)
    ]
    everything = store.experiment_frames()  # the store's shortcut reads the same, unfiltered
    assert sorted(everything.assignments["member_id"]) == [1, 2, 3]
    assert sorted(everything.redemptions["amount"]) == [1.5, 9.0]
