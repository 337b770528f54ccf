"""A holdout member's would-be offers: recorded, not delivered, never counted as sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

import polars as pl
from fastapi.testclient import TestClient

from nbo.history import InteractionStore
from nbo.history.logs import logged_decisions

from .conftest import READER, TODAY, planned_members


def _store(client: TestClient) -> InteractionStore:
    return InteractionStore(client.app.state.settings.database_url)  # type: ignore[attr-defined]


def test_holdout_would_be_offers_are_recorded_as_not_delivered_and_never_count(
    make_client: Callable[..., TestClient],
) -> None:
    held_out = make_client(holdout_share=1.0)
    served = make_client(holdout_share=0.0)
    member = planned_members(held_out)[0]
    at = datetime.combine(TODAY, time(10))
    query = {"at": at.isoformat()}
    body = held_out.get(f"/v1/members/{member}/offers", params=query, headers=READER).json()
    assert body["arm"] == "holdout" and body["offers"] == []
    sent = served.get(f"/v1/members/{member}/offers", params=query, headers=READER).json()
    assert sent["offers"], "the member has offers in the plan"

    with _store(held_out) as store:
        would_be = store.decisions_for(member).sort("rank")
        # what the member would have got is what a served member with no history gets
        assert would_be["offer_id"].to_list() == [o["offer_id"] for o in sent["offers"]]
        assert would_be["arm"].unique().to_list() == ["holdout"]
        assert not would_be["delivered"].any()
        # … and it is sent to no one: contacts, budgets, the report and OPE never see it
        later = at + timedelta(days=1)
        contacts = store.member_contacts([member], at=later, sent_before=later)
        assert contacts[member].sent == []
        state = store.contact_state(later, [member])
        assert state.sent.is_empty()
        campaigns = would_be["campaign_id"].drop_nulls().unique().to_list()
        usage = store.campaign_usage(campaigns, at - timedelta(days=1), later)
        assert usage == {}
        assert store.experiment_frames().decisions.is_empty()
        assert logged_decisions(store.engine).is_empty()
    with _store(served) as store:
        recorded = store.decisions_for(member)
        assert recorded["delivered"].all()
        assert store.member_contacts([member], at=later, sent_before=later)[member].sent
        assert logged_decisions(store.engine).filter(pl.col("member_id") == member).height == len(
            sent["offers"]
        )
