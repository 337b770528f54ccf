"""Request and response bodies of the offer service (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "BatchOffersRequest",
    "BatchOffersResponse",
    "Campaign",
    "CampaignList",
    "EventIn",
    "EventsAck",
    "EventsRequest",
    "Limit",
    "MemberOffersResponse",
    "Moment",
    "OfferDecision",
    "OfferInfo",
    "OfferList",
    "Problem",
    "Recommendation",
    "RecommendationsResponse",
    "ReloadResponse",
]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]
"""A time in UTC; the store keeps naive UTC, answers carry the zone (RFC 3339)."""

_DATE_AND_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _date_and_time(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_AND_TIME.match(value):
        raise ValueError("a time is text with a date and a time of day: 2024-04-01T12:00:00Z")
    return value


Moment = Annotated[
    datetime,
    BeforeValidator(_date_and_time),
    Field(description="ISO 8601 date and time; without a zone, UTC"),
]
"""A time a request gives: ISO 8601 text with a date and a time of day, as the schema's
``date-time`` says (pydantic alone would also take a number, or digits, as a Unix time, and a
bare date as its midnight)."""


def _whole(value: object) -> object:
    # JSON has one kind of number: 23.0 is the integer 23 to a JSON Schema validator
    return int(value) if isinstance(value, float) and value.is_integer() else value


# a JSON integer: a number without a fraction (23 or 23.0), never a bool or text (the
# validator after the constraints, so that they stay in the JSON schema)
Limit = Annotated[
    int,
    Field(strict=True, ge=1, le=50, description="at most this many offers"),
    BeforeValidator(_whole),
]
MemberId = Annotated[
    # lt 2**63 rather than le 2**63 - 1: the same members, and a bound a double holds exactly,
    # as JSON Schema validators compare numbers
    Annotated[int, Field(strict=True, ge=0, lt=2**63), BeforeValidator(_whole)]
    | Annotated[str, Field(min_length=1, max_length=64)],
    Field(
        description="the club's member number, or its member key where the club's keys are "
        "text (card numbers with leading zeros, letters): then always a string"
    ),
]
MAX_BATCH_MEMBERS = 1_000
MAX_EVENTS = 10_000
EventType = Literal["exposure", "click", "redemption", "dismissal"]  # = EVENT_TYPES


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class OfferDecision(_Out):
    """One decided offer: what to send, when, why, and what it is expected to earn."""

    decision_id: str = Field(description="quote it in events about this offer")
    rank: int
    offer_id: str
    campaign_id: str
    campaign_type: str | None
    category: str | None
    product: str | None = Field(description="the offer's main product group")
    valid_from: date
    valid_until: date
    p_redeem: float = Field(description="probability the member redeems it")
    p_buy: float = Field(description="probability the member buys its products anyway")
    uplift: float = Field(description="P(buy | offer) − P(buy | no offer)")
    uplift_measured: bool = Field(
        description="false: uplift is the documented assumption p_redeem × (1 − p_buy), "
        "not learned from randomized exposure"
    )
    incremental_value: float = Field(
        description="uplift × value − expected cost: what the offer is expected to change (money)"
    )
    expected_value: float = Field(
        description="p_redeem × value − expected cost (money; counts every redemption as value)"
    )
    expected_cost: float
    send_at: UtcTime = Field(description="the member's predicted next visit window")
    reason: str
    track: str = Field(description="default, onboarding, winback or explore")
    explored: bool
    propensity: float = Field(description="probability this policy chose this offer")


class MemberOffersResponse(_Out):
    member_id: int | str = Field(description="as asked: the club's member number or key")
    at: UtcTime
    channel: str
    arm: Literal["champion", "challenger", "holdout"]
    cold_start: bool = Field(description="the member has too little history; popular offers")
    model_version: str
    offers: list[OfferDecision]


class BatchOffersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_ids: list[MemberId] = Field(min_length=1, max_length=MAX_BATCH_MEMBERS)
    at: Moment | None = None
    channel: str = "email"
    limit: Limit | None = None


class BatchOffersResponse(_Out):
    results: list[MemberOffersResponse]


class Recommendation(_Out):
    rank: int
    product_id: int
    score: float
    reason: str


class RecommendationsResponse(_Out):
    member_id: int | str = Field(description="as asked: the club's member number or key")
    at: UtcTime
    cold_start: bool
    model_version: str
    products: list[Recommendation]


class EventIn(BaseModel):
    """What happened to an offer: shown, clicked, redeemed or dismissed."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=64, description="unique; resending is safe")
    event_type: EventType
    member_id: MemberId
    offer_id: str = Field(min_length=1, max_length=200)
    ts: Moment
    decision_id: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=32)
    amount: Annotated[float, Field(strict=True)] | None = Field(
        default=None, allow_inf_nan=False, description="money: the discount paid on a redemption"
    )


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsAck(_Out):
    """Sent only after the events are durably committed."""

    inserted: int
    duplicates: int


class OfferInfo(_Out):
    offer_id: str
    campaign_id: str
    campaign_type: str | None
    category: str | None
    product: str | None
    valid_from: date
    valid_until: date
    targeted: bool


class OfferList(_Out):
    at: UtcTime
    offers: list[OfferInfo]


class Campaign(_Out):
    campaign_id: str
    campaign_type: str | None
    name: str | None
    start_date: date
    end_date: date
    targeted: bool


class CampaignList(_Out):
    at: UtcTime
    campaigns: list[Campaign]


class ReloadResponse(_Out):
    models: dict[str, str] = Field(description="arm → the model URI now served")


class Problem(_Out):
    detail: str | list[dict[str, Any]] = Field(
        description="what is wrong: a sentence, or FastAPI's list of field errors"
    )
