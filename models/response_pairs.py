"""The offer response model's examples: (campaign audience member × offer) pairs, labelled.

:func:`training_pairs` gives the examples of campaigns that started before ``as_of`` (negatives
sampled, labels from redemptions before ``as_of``); :func:`offer_pairs` the evaluation set, every
pair of the campaigns starting on or after ``as_of`` with its label from the full club.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from math import ceil

import numpy as np
import polars as pl

from nbo.data.audience import offered_audience
from nbo.data.io import ClubData
from nbo.features.history import History, as_datetime
from nbo.features.offers.columns import KEYS as _KEYS

__all__ = ["audience_pairs", "campaign_members", "offer_pairs", "training_pairs"]


def campaign_members(
    campaigns: pl.LazyFrame, audience: pl.LazyFrame, members: pl.LazyFrame
) -> pl.LazyFrame:
    """(campaign_id, member_id) of each campaign's audience; untargeted ones reach ``members``.

    Controls held out at random (``treated`` false) got no offer and are left out.
    """
    targeted = (
        offered_audience(audience)
        .join(
            campaigns.filter(pl.col("targeted")).select("campaign_id"), on="campaign_id", how="semi"
        )
        .select("campaign_id", "member_id")
    )
    everyone = (
        campaigns.filter(~pl.col("targeted"))
        .select("campaign_id")
        .join(members.select("member_id"), how="cross")
    )
    return pl.concat([targeted, everyone])


def audience_pairs(
    campaigns: pl.LazyFrame, audience: pl.LazyFrame, offers: pl.LazyFrame, members: pl.LazyFrame
) -> pl.LazyFrame:
    """Every (member_id, offer_id, campaign_id) a campaign offered: its audience × its offers."""
    return (
        campaign_members(campaigns, audience, members)
        .join(offers.select("offer_id", "campaign_id"), on="campaign_id")
        .select("member_id", "offer_id", "campaign_id")
    )


def _labelled(pairs: pl.LazyFrame, redemptions: pl.LazyFrame) -> pl.LazyFrame:
    redeemed = redemptions.select(_KEYS).unique().with_columns(label=pl.lit(1, pl.Int8))
    return pairs.join(redeemed, on=_KEYS, how="left").with_columns(pl.col("label").fill_null(0))


def offer_pairs(club: ClubData, as_of: date | datetime | str) -> pl.DataFrame:
    """Evaluation pairs: campaigns starting on/after ``as_of``, audience × offers, with labels.

    Columns member_id, offer_id, campaign_id, label (1 = redeemed, from the full club's
    redemptions), sorted by campaign, member and offer.
    """
    start = as_datetime(as_of).date()
    campaigns = club.campaigns.filter(pl.col("start_date") >= start)
    pairs = audience_pairs(campaigns, club.campaign_audience, club.offers, club.members)
    return _labelled(pairs, club.redemptions).sort("campaign_id", *_KEYS).collect()


def training_pairs(
    history: History,
    *,
    include_running: bool = True,
    min_history_days: int = 28,
    max_pairs: int | None = None,
    negatives_per_positive: float | None = None,
    random_state: int | None = 0,
) -> pl.DataFrame:
    """Labelled pairs of the campaigns in ``history``, with their start date and a sample weight.

    Campaigns that ended before ``as_of`` have fully observed labels; running ones (with
    ``include_running``) count redemptions so far. Campaigns starting less than
    ``min_history_days`` after the first receipt are left out (their members have no history
    yet). Positives are kept (up to half of ``max_pairs``); negatives are sampled uniformly down
    to ``negatives_per_positive`` per positive and to ``max_pairs`` in all, deterministically for
    a ``random_state``. ``weight`` is the number of club pairs each kept pair stands for
    (1 / sampling rate), which the model uses to undo the sampling. Columns: member_id,
    offer_id, campaign_id, label, weight, start_date.
    """
    campaigns = history.campaigns
    if not include_running:
        campaigns = campaigns.filter(pl.col("end_date") < history.as_of_date)
    first = history.transactions.select(pl.col("ts").min()).collect().item()
    if first is not None:
        campaigns = campaigns.filter(
            pl.col("start_date") >= first.date() + timedelta(days=min_history_days)
        )
    campaigns = campaigns.collect().lazy()
    starts = campaigns.select("campaign_id", "start_date")
    pairs = audience_pairs(campaigns, history.campaign_audience, history.offers, history.members)
    labelled = _labelled(pairs, history.redemptions)
    rng = np.random.default_rng(random_state)
    all_positives = labelled.filter(pl.col("label") == 1).sort(_KEYS).collect()
    n_positives = all_positives.height
    n_negatives = pairs.select(pl.len()).collect().item() - n_positives
    keep_positives, keep_negatives = n_positives, n_negatives
    if max_pairs is not None:
        keep_positives = min(n_positives, max(max_pairs // 2, 1))
        keep_negatives = min(keep_negatives, max_pairs - keep_positives)
    if negatives_per_positive is not None:
        keep_negatives = min(keep_negatives, ceil(negatives_per_positive * max(keep_positives, 1)))
    positives = all_positives
    if keep_positives < n_positives:
        positives = all_positives.sample(keep_positives, seed=int(rng.integers(2**31)))
    if keep_negatives >= n_negatives:
        negatives = labelled.filter(pl.col("label") == 0).collect()
    else:
        # Draw a little more than needed from all pairs, drop positives, trim to the target.
        draw = min(1.0, 1.05 * keep_negatives / n_negatives + 16 / (n_negatives + n_positives))
        negatives = (
            _sample_pairs(campaigns, history, draw, rng)
            .join(all_positives, on=_KEYS, how="anti")
            .with_columns(label=pl.lit(0, pl.Int8))
            .sort(_KEYS)  # joins do not keep order; the trim below must see a fixed one
        )
        if negatives.height > keep_negatives:
            negatives = negatives.sample(keep_negatives, seed=int(rng.integers(2**31)))
    weighted = pl.concat(
        [
            positives.with_columns(weight=pl.lit(n_positives / max(positives.height, 1))),
            negatives.select(positives.columns).with_columns(
                weight=pl.lit(n_negatives / max(negatives.height, 1))
            ),
        ]
    )
    return weighted.join(starts.collect(), on="campaign_id").sort("campaign_id", *_KEYS)


def _sample_pairs(
    campaigns: pl.LazyFrame, history: History, rate: float, rng: np.random.Generator
) -> pl.DataFrame:
    """A uniform sample (share ``rate``) of each campaign's audience × offers.

    Draws pair indices per campaign, so the full cross product is never built.
    """
    members = (
        campaign_members(campaigns, history.campaign_audience, history.members)
        .group_by("campaign_id")
        .agg(pl.col("member_id").sort())
        .sort("campaign_id")
        .collect()
    )
    offers = history.offers.group_by("campaign_id").agg(pl.col("offer_id").sort()).collect()
    offer_lists = dict(zip(offers["campaign_id"], offers["offer_id"], strict=True))
    parts: list[pl.DataFrame] = []
    for campaign_id, member_ids in zip(members["campaign_id"], members["member_id"], strict=True):
        campaign_offers = offer_lists.get(campaign_id)
        if campaign_offers is None:
            continue
        n_offers = len(campaign_offers)
        n = len(member_ids) * n_offers
        k = round(rate * n)
        if k == 0:
            continue
        index = rng.choice(n, size=k, replace=False)
        parts.append(
            pl.DataFrame(
                {
                    "member_id": member_ids.gather(index // n_offers),
                    "offer_id": campaign_offers.gather(index % n_offers),
                    "campaign_id": pl.repeat(campaign_id, k, dtype=pl.String, eager=True),
                }
            )
        )
    schema = {"member_id": pl.Int64, "offer_id": pl.String, "campaign_id": pl.String}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)
