"""The training reference a bundle carries for drift monitoring (``Bundle.reference``).

The population is what the model scores when it plans a day: every audience member × offer of
the campaigns that started in the :data:`REFERENCE_WEEKS` weeks before the training date or
later, each scored as of its campaign's start (as of the training date for later campaigns:
nothing sees data after it). A bundle trained on all the data thus still has one. Of a sample
of at most :data:`MAX_REFERENCE_PAIRS` pairs, the deciles of ``p_redeem`` and ``p_buy``
(:func:`nbo.evaluation.monitor.reference_of`). ``nbo plan`` and ``nbo monitor`` compare the
scores they serve with it (:func:`nbo.evaluation.monitor.psi`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from nbo.data.io import ClubData
from nbo.evaluation.monitor import Reference, reference_of
from nbo.features.history import History
from nbo.models.response_pairs import audience_pairs
from nbo.tracking.bundle import Bundle

__all__ = ["MAX_REFERENCE_PAIRS", "REFERENCE_WEEKS", "references_of", "training_reference"]

REFERENCE_WEEKS = 8
MAX_REFERENCE_PAIRS = 20_000
"""Pairs sampled for the reference (deciles need no more; scoring is the cost)."""


def reference_pairs(bundle: Bundle, club: ClubData, *, seed: int = 0) -> pl.DataFrame:
    """member_id, offer_id, at: the sampled pairs (see the module docstring)."""
    as_of = bundle.as_of
    first = (as_of - timedelta(weeks=REFERENCE_WEEKS)).date()
    campaigns = club.campaigns.filter(pl.col("start_date") >= first)
    pairs = (
        audience_pairs(campaigns, club.campaign_audience, club.offers, club.members)
        .join(campaigns.select("campaign_id", "start_date"), on="campaign_id")
        .select(
            "member_id",
            "offer_id",
            at=pl.min_horizontal(pl.col("start_date").cast(pl.Datetime("us")), pl.lit(as_of)),
        )
        .sort("at", "member_id", "offer_id")
        .collect()
    )
    if pairs.height > MAX_REFERENCE_PAIRS:
        pairs = pairs.sample(MAX_REFERENCE_PAIRS, seed=seed).sort("at", "member_id", "offer_id")
    return pairs


def training_reference(bundle: Bundle, club: ClubData, *, seed: int = 0) -> dict[str, Any] | None:
    """What to store as ``bundle.reference``: score name -> bins (JSON-friendly), and
    ``population``. None when no campaign started in the weeks before the training date."""
    pairs = reference_pairs(bundle, club, seed=seed)
    if pairs.height == 0:
        return None
    scored = []
    for (at,), group in pairs.group_by("at", maintain_order=True):
        history = History.at(club, at)
        keys = group.select("member_id", "offer_id")
        scored.append(
            keys.with_columns(
                p_redeem=bundle.response.predict_proba(history, keys)["p_redeem"],
                p_buy=bundle.purchase.predict_proba(history, keys)["p_buy"],
            )
        )
    frame = pl.concat(scored)
    found = {name: reference_of(frame[name].to_numpy()) for name in ("p_redeem", "p_buy")}
    population = (
        f"{frame.height} offer pairs of campaigns starting from "
        f"{bundle.as_of - timedelta(weeks=REFERENCE_WEEKS):%Y-%m-%d}, scored as of their start"
    )
    return {name: ref.to_dict() for name, ref in found.items() if ref is not None} | {
        "population": population
    }


def references_of(recorded: dict[str, Any] | None) -> dict[str, Reference]:
    """The :class:`Reference` of each score in a bundle's or plan's recorded reference."""
    if not recorded:
        return {}
    return {
        name: Reference.from_dict(found)
        for name, found in recorded.items()
        if isinstance(found, dict) and "edges" in found
    }
