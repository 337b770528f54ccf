"""The decision policy: contact rules, diversity, exploration, tracks, economics and budgets.

A policy is data — a YAML file validated by pydantic (unknown keys are errors, so a typo never
silently turns a rule off). :func:`load_policy` turns any problem into a :class:`PolicyError`
naming the file and the field. Every field has a default, so an empty file is a valid policy;
``docs/decisioning.md`` explains each one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from nbo.errors import PolicyError
from nbo.yamlfile import read_yaml

__all__ = [
    "Budget",
    "CampaignRules",
    "ContactRules",
    "Diversity",
    "Economics",
    "Exploration",
    "Objective",
    "OfferRules",
    "Policy",
    "Tracks",
    "load_policy",
]

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactRules(_Strict):
    """How often a member may be contacted, read from the interaction history."""

    period_days: int = Field(default=7, ge=1, description="length of the frequency-cap period")
    max_offers: dict[str, int] = Field(
        default_factory=lambda: {"email": 3, "app": 5, "pos": 3},
        description="max offers per member per channel per period (channels not listed: no cap)",
    )
    cooldown_days: int = Field(
        default=14, ge=0, description="days before the same offer is shown again"
    )
    suppress_after_ignored: int | None = Field(
        default=3,
        ge=1,
        description="stop an offer after this many exposures in a row without response",
    )
    skip_recent_purchase_days: int = Field(
        default=0, ge=0, description="no discount on a product bought in the last N days (0 = off)"
    )


class Diversity(_Strict):
    """Variety in one member's list: avoid routine."""

    max_per_category: int = Field(
        default=1, ge=1, description="offers of one product category per list"
    )
    max_per_campaign: int | None = Field(
        default=None, ge=1, description="offers of one campaign per list (None: no cap)"
    )
    new_product_share: Share = Field(
        default=0.34, description="share of slots kept for offers on products new to the member"
    )


class Exploration(_Strict):
    """Thompson sampling (probability matching) on offer-level redemption rates."""

    share: Share = Field(default=0.05, description="share of members whose last slot explores")
    prior_strength: float = Field(
        default=20.0,
        gt=0,
        description="pseudo-exposures behind each offer's prior (the model's mean p)",
    )
    draws: int = Field(
        default=20_000, ge=100, description="Monte Carlo draws for the matching odds"
    )


class Tracks(_Strict):
    """Onboarding for new members, win-back for lapsing ones."""

    onboarding_max_baskets: int = Field(
        default=4, ge=0, description="members with fewer baskets than this get the onboarding track"
    )
    onboarding_multiplier: NonNegative = Field(
        default=1.5, description="value multiplier, onboarding"
    )
    winback_multiplier: NonNegative = Field(
        default=1.3, description="value multiplier, lapsing members"
    )
    onboarding_campaigns: list[str] = Field(
        default_factory=list, description="only these campaigns for onboarding (empty: all)"
    )
    winback_campaigns: list[str] = Field(
        default_factory=list, description="only these campaigns for win-back (empty: all)"
    )


Objective = Literal["incremental_margin", "revenue", "redemptions"]


class Economics(_Strict):
    """What arbitration maximises, and defaults for value and cost where the data has none."""

    objective: Objective = Field(
        default="incremental_margin",
        description=(
            "incremental_margin: uplift × value − expected cost (what the offer changes); "
            "revenue: p_redeem × value − expected cost (every redemption counted as value); "
            "redemptions: p_redeem (cost left to budgets)"
        ),
    )
    margin: Share = Field(default=0.30, description="club margin on the offer's products' sales")
    default_discount: NonNegative = Field(
        default=1.0, description="discount per redemption if unknown"
    )
    club_funded_share: Share | None = Field(
        default=None, description="share of a discount the club pays (None: from the data, else 1)"
    )
    contact_cost: dict[str, NonNegative] = Field(
        default_factory=lambda: {"email": 0.0, "app": 0.0, "pos": 0.02},
        description="cost of one contact per channel",
    )
    member_cost_share: Share | None = Field(
        default=0.05,
        description="expected discount cost per member per list ≤ share of yearly value",
    )
    member_cost_floor: NonNegative = Field(
        default=1.0, description="the cap is never below this (new members have no yearly value)"
    )


class Budget(_Strict):
    """Club-wide limits of one campaign for one decision run."""

    max_redemptions: NonNegative | None = None
    max_cost: NonNegative | None = None
    max_audience: int | None = Field(default=None, ge=0)

    @property
    def is_set(self) -> bool:
        return any(v is not None for v in (self.max_redemptions, self.max_cost, self.max_audience))


class CampaignRules(Budget):
    """Levers and limits for one campaign."""

    weight: NonNegative = 1.0
    boost: float = Field(default=0.0, allow_inf_nan=False, description="added to priority (money)")
    channels: list[str] | None = Field(default=None, description="channels it may use (None: all)")


class OfferRules(_Strict):
    weight: NonNegative = 1.0
    boost: float = Field(default=0.0, allow_inf_nan=False)


class Policy(_Strict):
    """Everything the engine needs to turn scores into decisions."""

    slots: int = Field(default=3, ge=1, le=50, description="offers per member per decision")
    channels: list[str] = Field(default_factory=lambda: ["email", "app", "pos"])
    contact: ContactRules = ContactRules()
    diversity: Diversity = Diversity()
    exploration: Exploration = Exploration()
    tracks: Tracks = Tracks()
    economics: Economics = Economics()
    campaigns: dict[str, CampaignRules] = Field(default_factory=dict)
    offers: dict[str, OfferRules] = Field(default_factory=dict)
    excluded_members: list[int] = Field(default_factory=list)
    excluded_offers: list[str] = Field(default_factory=list)
    send_lead_hours: int = Field(
        default=2, ge=0, le=24, description="send this many hours before the member's usual hour"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _channels_known(self) -> Policy:
        known = set(self.channels)
        # only what the file sets is checked: the defaults name channels a club may not use
        where: dict[str, dict[str, int] | dict[str, float]] = {}
        if "max_offers" in self.contact.model_fields_set:
            where["contact.max_offers"] = self.contact.max_offers
        if "contact_cost" in self.economics.model_fields_set:
            where["economics.contact_cost"] = self.economics.contact_cost
        for field, mapping in where.items():
            unknown = sorted(set(mapping) - known)
            if unknown:
                raise ValueError(
                    f"{field} names unknown channel(s) {unknown}; known: {sorted(known)}"
                )
        for campaign, rules in self.campaigns.items():
            unknown = sorted(set(rules.channels or ()) - known)
            if unknown:
                raise ValueError(f"campaigns.{campaign}.channels: unknown channel(s) {unknown}")
        return self

    def campaign(self, campaign_id: str) -> CampaignRules:
        return self.campaigns.get(campaign_id, _DEFAULT_CAMPAIGN)

    def offer(self, offer_id: str) -> OfferRules:
        return self.offers.get(offer_id, _DEFAULT_OFFER)

    def with_objective(self, objective: Objective) -> Policy:
        """This policy arbitrating on ``objective`` (everything else the same)."""
        economics = self.economics.model_copy(update={"objective": objective})
        return self.model_copy(update={"economics": economics})

    def new_slots(self) -> int:
        """Slots reserved for offers on products new to the member."""
        return math.floor(self.diversity.new_product_share * self.slots + 1e-9)

    def check_channel(self, channel: str) -> str:
        if channel not in self.channels:
            raise PolicyError(f"unknown channel {channel!r}; the policy knows {self.channels}")
        return channel


_DEFAULT_CAMPAIGN = CampaignRules()
_DEFAULT_OFFER = OfferRules()


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy YAML file; ``None`` gives the default policy."""
    if path is None:
        return Policy()
    path = Path(path)
    raw = read_yaml(path, PolicyError, "policy file")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: a policy is a mapping of settings, got {type(raw).__name__}")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(e)}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path}: invalid policy — {problems}") from None
