"""Offer response: P(member redeems offer o when it is offered at t).

:class:`OfferResponse` learns from the club's own past campaigns: every (audience member × offer)
pair of a campaign that started before ``as_of`` is an example, labelled by whether the member
redeemed that offer before ``as_of``, with features computed as of the campaign's start (see
:mod:`nbo.features.offers`). A gradient-boosted tree model (scikit-learn's
``HistGradientBoostingClassifier``, log loss) maps features to a probability.

:func:`offer_pairs` builds the evaluation set: every pair of the campaigns that start on or after
``as_of`` with its label from the full club.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier

from nbo.data.io import ClubData
from nbo.features.history import History, as_datetime
from nbo.features.offers import FEATURES, response_features

__all__ = ["OfferResponse", "audience_pairs", "campaign_members", "offer_pairs", "training_pairs"]

_KEYS = ["member_id", "offer_id"]


def campaign_members(
    campaigns: pl.LazyFrame, audience: pl.LazyFrame, members: pl.LazyFrame
) -> pl.LazyFrame:
    """(campaign_id, member_id) of each campaign's audience; untargeted ones reach ``members``."""
    targeted = audience.join(
        campaigns.filter(pl.col("targeted")).select("campaign_id"), on="campaign_id", how="semi"
    ).select("campaign_id", "member_id")
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
    random_state: int | None = 0,
) -> pl.DataFrame:
    """Labelled pairs of the campaigns in ``history``, with their start date and a sample weight.

    Campaigns that ended before ``as_of`` have fully observed labels; running ones (with
    ``include_running``) count redemptions so far. Campaigns starting less than
    ``min_history_days`` after the first receipt are left out (their members have no history
    yet). Above ``max_pairs`` every positive is kept and negatives are sampled uniformly
    (deterministically for a ``random_state``), weighted ``1 / rate`` so probabilities stay
    calibrated. Columns: member_id, offer_id, campaign_id, label, weight, start_date.
    """
    campaigns = history.campaigns
    if not include_running:
        campaigns = campaigns.filter(pl.col("end_date") < history.as_of_date)
    first = history.transactions.select(pl.col("ts").min()).collect().item()
    if first is not None:
        earliest = first.date() + timedelta(days=min_history_days)
        campaigns = campaigns.filter(pl.col("start_date") >= earliest)
    campaigns = campaigns.collect().lazy()
    pairs = audience_pairs(campaigns, history.campaign_audience, history.offers, history.members)
    labelled = _labelled(pairs, history.redemptions).with_columns(weight=pl.lit(1.0))
    total = pairs.select(pl.len()).collect().item()
    if max_pairs is not None and total > max_pairs:
        positives = labelled.filter(pl.col("label") == 1).collect()
        budget = max(max_pairs - positives.height, max_pairs // 10)
        rate = min(1.0, budget / max(total - positives.height, 1))
        negatives = (
            _sample_pairs(campaigns, history, rate, np.random.default_rng(random_state))
            .join(positives, on=_KEYS, how="anti")
            .with_columns(label=pl.lit(0, pl.Int8), weight=pl.lit(1.0 / rate))
        )
        labelled = pl.concat([positives, negatives.select(positives.columns)]).lazy()
    starts = campaigns.select("campaign_id", "start_date")
    return labelled.join(starts, on="campaign_id").sort("campaign_id", *_KEYS).collect()


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


class OfferResponse:
    """P(member redeems an offer), learned from the club's past campaigns.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn's ``HistGradientBoostingClassifier``.
    max_train_pairs
        Cap on training pairs; above it negatives are sampled (see :func:`training_pairs`).
    include_running
        Also learn from campaigns still running at ``as_of`` (redemptions so far as labels).
    min_history_days
        Skip campaigns that start this soon after the first receipt in the data.
    random_state
        Seed for the pair sample and the model.
    """

    def __init__(
        self,
        *,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        max_train_pairs: int = 500_000,
        include_running: bool = True,
        min_history_days: int = 28,
        random_state: int | None = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_train_pairs = max_train_pairs
        self.include_running = include_running
        self.min_history_days = min_history_days
        self.random_state = random_state

    def fit(self, history: History) -> OfferResponse:
        """Learn from every campaign in ``history`` (features as of each campaign's start)."""
        if self.max_train_pairs < 1:
            raise ValueError(f"max_train_pairs must be >= 1, got {self.max_train_pairs}")
        if self.min_history_days < 0:
            raise ValueError(f"min_history_days must be >= 0, got {self.min_history_days}")
        seed = self.random_state
        pairs = training_pairs(
            history,
            include_running=self.include_running,
            min_history_days=self.min_history_days,
            max_pairs=self.max_train_pairs,
            random_state=seed,
        )
        if pairs.height == 0 or pairs["label"].sum() == 0:
            raise ValueError(
                f"nothing to learn from: no campaign before {history.as_of:%Y-%m-%d} "
                "with an audience, offers and at least one redemption"
            )
        features = pl.concat(
            [
                response_features(History.at(history.club, start), group.lazy())
                for (start,), group in pairs.group_by("start_date", maintain_order=True)
            ]
        ).collect()
        self.campaign_types_: list[str] = sorted(
            features["campaign_type"].drop_nulls().unique().to_list()
        )
        self.feature_names_: list[str] = [
            *FEATURES,
            *(f"campaign_type={t}" for t in self.campaign_types_),
        ]
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=seed,
        ).fit(
            self._matrix(features),
            features["label"].to_numpy(),
            sample_weight=features["weight"].to_numpy(),
        )
        self.as_of_: datetime = history.as_of
        self.n_train_pairs_ = features.height
        self.n_train_positives_ = int(features["label"].sum())
        self.train_campaigns_: list[str] = sorted(pairs["campaign_id"].unique().to_list())
        return self

    def predict_proba(self, history: History, pairs: pl.DataFrame) -> pl.DataFrame:
        """p_redeem of each (member_id, offer_id) in ``pairs``, features as of ``history``.

        Returns member_id, offer_id, p_redeem in input order. Members unknown to the club get
        cold-start features; offers unknown to the club raise a ``ValueError``.
        """
        if not hasattr(self, "model_"):
            raise ValueError("OfferResponse is not fitted yet; call fit(history) first")
        missing = [c for c in _KEYS if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs need columns member_id and offer_id; missing {missing}")
        keyed = pairs.select(pl.col("member_id").cast(pl.Int64), pl.col("offer_id").cast(pl.String))
        known = history.club.offers.select("offer_id").collect()["offer_id"]
        unknown = keyed.filter(~pl.col("offer_id").is_in(known.implode()))["offer_id"].unique()
        if unknown.len():
            shown = ", ".join(sorted(unknown.cast(pl.String).fill_null("<null>").to_list())[:10])
            raise ValueError(f"{unknown.len()} offer id(s) not in the club's offers: {shown}")
        if keyed.height == 0:
            return keyed.with_columns(p_redeem=pl.lit(None, pl.Float64))
        features = response_features(history, keyed.lazy()).collect()
        p_redeem = self.model_.predict_proba(self._matrix(features))[:, 1]
        return keyed.with_columns(p_redeem=pl.Series(p_redeem, dtype=pl.Float64))

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        types = [
            (pl.col("campaign_type") == t).fill_null(False).cast(pl.Float64).alias(f"type={t}")
            for t in self.campaign_types_
        ]
        return features.select(*FEATURES, *types).to_numpy().astype(np.float64)
