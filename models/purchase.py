"""Purchase propensity: P(member buys any of an offer's products in its window without it).

``p_buy`` is what an offer cannot take credit for: the chance the member buys the offer's
products within the campaign's window [start_date, end_date] anyway. :class:`OfferPurchase`
learns it from the members who did *not* get a past campaign's offers: members outside a
targeted campaign's audience (sampled) and audience members held out at random as controls
(``campaign_audience.treated`` false). Each example is a (member, offer) pair labelled by
whether the member bought any of the offer's products in the window, with the same
point-in-time pair features as the offer response model (:mod:`nbo.features.offers`) as of the
campaign's start; a gradient-boosted tree model maps them to a probability. The examples are a
uniform sample of the untreated pairs, so no weights are needed for calibration.

Untargeted campaigns reach everyone, so they have no untreated members and teach nothing here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError

from nbo.data.audience import audience_with_treated
from nbo.data.io import ClubData
from nbo.features.history import History, as_datetime
from nbo.features.offers import FEATURES, features_at_starts
from nbo.models.params import LeafNodes, check_params
from nbo.models.prior import purchase_prior
from nbo.models.response import (
    campaign_types,
    pair_classifier,
    pair_matrix,
    score_pairs,
    tree_probability,
)

__all__ = [
    "WINDOW",
    "OfferPurchase",
    "purchase_labels",
    "untreated_pairs",
    "window_days",
]

WINDOW = "window_days"  # days of the offer's window the label saw; the whole window to predict


def untreated_pairs(
    club: ClubData,
    campaigns: pl.DataFrame,
    *,
    members_at: datetime | None = None,
    max_pairs: int | None = None,
    random_state: int | None = 0,
) -> pl.DataFrame:
    """(member_id, offer_id, campaign_id, start_date) of members who did not get the offers.

    For each targeted campaign of ``campaigns``: the members known at its start (or at
    ``members_at``) who are not treated members of its audience, × its offers; a uniform
    sample of them when there are more than ``max_pairs`` in all (shared between campaigns
    in proportion to their size). Sorted by campaign, member and offer.
    """
    schema = {
        "member_id": pl.Int64,
        "offer_id": pl.String,
        "campaign_id": pl.String,
        "start_date": pl.Date,
    }
    targeted = campaigns.filter(pl.col("targeted")).sort("campaign_id")
    offers = (
        club.offers.join(targeted.lazy().select("campaign_id"), on="campaign_id", how="semi")
        .group_by("campaign_id")
        .agg(pl.col("offer_id").sort())
        .collect()
    )
    offer_lists = dict(zip(offers["campaign_id"], offers["offer_id"], strict=True))
    treated = (
        audience_with_treated(club.campaign_audience)
        .filter(pl.col("treated"))
        .join(targeted.lazy().select("campaign_id"), on="campaign_id", how="semi")
        .collect()
    )
    known: dict[datetime, pl.Series] = {}
    candidates: list[tuple[str, date, pl.Series, pl.Series]] = []
    for campaign_id, start in zip(targeted["campaign_id"], targeted["start_date"], strict=True):
        campaign_offers = offer_lists.get(campaign_id)
        if campaign_offers is None:
            continue
        at = members_at if members_at is not None else as_datetime(start)
        if at not in known:
            members = History.at(club, at).members.select("member_id").collect()["member_id"]
            known[at] = members.sort()
        got = treated.filter(pl.col("campaign_id") == campaign_id)["member_id"]
        members = known[at].filter(~known[at].is_in(got.implode()))
        if members.len():
            candidates.append((campaign_id, start, members, campaign_offers))
    total = sum(m.len() * o.len() for _, _, m, o in candidates)
    rate = 1.0 if max_pairs is None or total <= max_pairs else max_pairs / total
    rng = np.random.default_rng(random_state)
    parts = []
    for campaign_id, start, members, campaign_offers in candidates:
        n_offers = campaign_offers.len()
        n = members.len() * n_offers
        k = n if rate == 1.0 else int(rng.binomial(n, rate))
        index = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        parts.append(
            pl.DataFrame(
                {
                    "member_id": members.gather(index // n_offers),
                    "offer_id": campaign_offers.gather(index % n_offers),
                    "campaign_id": pl.repeat(campaign_id, k, dtype=pl.String, eager=True),
                    "start_date": pl.repeat(start, k, dtype=pl.Date, eager=True),
                }
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def purchase_labels(
    pairs: pl.DataFrame, transactions: pl.LazyFrame, club: ClubData
) -> pl.DataFrame:
    """``pairs`` (member_id, offer_id, campaign_id, …) with ``label``: 1 if the member bought
    any of the offer's products in its campaign's window [start_date, end_date].

    Only the lines of ``transactions`` count: pass ``History.transactions`` to cut the windows
    of campaigns still running at ``as_of`` there.
    """
    windows = club.campaigns.select(
        "campaign_id",
        pl.col("start_date").cast(pl.Datetime("us")).alias("_from"),
        (pl.col("end_date").cast(pl.Datetime("us")) + timedelta(days=1)).alias("_to"),
    )
    keys = pairs.lazy().select("member_id", "offer_id", "campaign_id")
    bought = (
        keys.join(windows, on="campaign_id")
        .join(club.offer_products.select("offer_id", "product_id"), on="offer_id")
        .join(
            transactions.join(keys.select("member_id").unique(), on="member_id", how="semi").select(
                "member_id", "product_id", pl.col("ts").cast(pl.Datetime("us"))
            ),
            on=["member_id", "product_id"],
        )
        .filter((pl.col("ts") >= pl.col("_from")) & (pl.col("ts") < pl.col("_to")))
        .select("member_id", "offer_id", "campaign_id")
        .unique()
        .with_columns(label=pl.lit(1, pl.Int8))
        .collect()
    )
    return pairs.join(
        bought, on=["member_id", "offer_id", "campaign_id"], how="left", maintain_order="left"
    ).with_columns(pl.col("label").fill_null(0))


class OfferPurchase(BaseEstimator):  # type: ignore[misc]
    """P(member buys any of an offer's products in its window without the offer): ``p_buy``.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn's ``HistGradientBoostingClassifier``.
    max_train_pairs
        Untreated pairs sampled to learn from (bounds fit time: each campaign start costs a
        feature pass over its sampled members).
    max_campaigns
        Learn from the most recent this many targeted campaigns before ``as_of``.
    include_running
        Also learn from campaigns still running at ``as_of``: their windows are cut there,
        and ``window_days`` (the days observed) tells the model so.
    min_history_days
        Skip campaigns that start this soon after the first receipt in the data.
    batch_size
        Pairs scored per feature pass in :meth:`predict_proba`.
    random_state
        Seed for the pair sample and the model.
    """

    def __init__(
        self,
        *,
        max_iter: PositiveInt = 100,
        learning_rate: PositiveFloat = 0.1,
        max_leaf_nodes: LeafNodes = 15,
        min_samples_leaf: PositiveInt = 40,
        l2_regularization: NonNegativeFloat = 1.0,
        max_train_pairs: PositiveInt = 40_000,
        max_campaigns: PositiveInt = 12,
        include_running: bool = True,
        min_history_days: NonNegativeInt = 28,
        batch_size: PositiveInt = 1_000_000,
        random_state: int | None = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_train_pairs = max_train_pairs
        self.max_campaigns = max_campaigns
        self.include_running = include_running
        self.min_history_days = min_history_days
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, history: History) -> OfferPurchase:
        """Learn from the untreated pairs of the targeted campaigns in ``history``."""
        check_params(self)
        campaigns = history.campaigns.filter(pl.col("targeted"))
        if not self.include_running:
            campaigns = campaigns.filter(pl.col("end_date") < history.as_of_date)
        first = history.transactions.select(pl.col("ts").min()).collect().item()
        if first is not None:
            earliest = first.date() + timedelta(days=self.min_history_days)
            campaigns = campaigns.filter(pl.col("start_date") >= earliest)
        recent = (
            campaigns.sort("start_date", "campaign_id", descending=True)
            .head(self.max_campaigns)
            .collect()
        )
        pairs = untreated_pairs(
            history.club,
            recent,
            max_pairs=self.max_train_pairs,
            random_state=self.random_state,
        )
        labelled = purchase_labels(pairs, history.transactions, history.club).join(
            window_days(history).collect(), on="campaign_id", how="left", maintain_order="left"
        )
        self.as_of_: datetime = history.as_of
        self.model_: HistGradientBoostingClassifier | None = None
        self.campaign_types_: list[str] = []
        self.feature_names_: list[str] = [*FEATURES, WINDOW]
        self.n_train_pairs_: int = labelled.height
        self.train_rate_: float = float(labelled["label"].mean()) if labelled.height else 0.0  # type: ignore[arg-type]
        self.train_campaigns_: list[str] = sorted(labelled["campaign_id"].unique().to_list())
        self.learned_: bool = labelled.height > 0 and labelled["label"].n_unique() == 2
        if not self.learned_:
            self.reason_: str = (
                f"no targeted campaign before {history.as_of:%Y-%m-%d} whose untreated members "
                "both did and did not buy"
            )
            return self
        self.reason_ = ""
        features = features_at_starts(history.club, labelled).sort(
            "campaign_id", "member_id", "offer_id"
        )  # the fit sees one row order, always
        self.campaign_types_ = campaign_types(features)
        self.feature_names_ = [
            *FEATURES,
            *(f"campaign_type={t}" for t in self.campaign_types_),
            WINDOW,
        ]
        self.model_ = pair_classifier(self).fit(
            self._matrix(features), features["label"].to_numpy()
        )
        self.n_train_pairs_ = features.height
        return self

    def predict_proba(
        self,
        history: History,
        pairs: pl.DataFrame,
        *,
        receipts: pl.LazyFrame | None = None,
        offers: pl.LazyFrame | None = None,
    ) -> pl.DataFrame:
        """p_buy of each (member_id, offer_id) in ``pairs``, features as of ``history``.

        Returns member_id, offer_id, p_buy in input order; batching, ``receipts`` and
        ``offers`` as in :func:`~nbo.models.response.score_pairs` (the same scoring loop as
        the offer response model).
        """
        if not hasattr(self, "as_of_"):
            raise NotFittedError("OfferPurchase is not fitted yet; call fit(history) first")

        def p_buy(features: pl.DataFrame) -> np.ndarray:
            if self.model_ is None:
                return purchase_prior(features)
            window = features.with_columns(pl.col("o_campaign_days").alias(WINDOW))
            return tree_probability(self.model_, self._matrix(window))

        keyed, p = score_pairs(
            history,
            pairs,
            p_buy,
            batch_size=self.batch_size,
            receipts=receipts,
            offers=offers,
        )
        return keyed.with_columns(p_buy=pl.Series(p, dtype=pl.Float64))

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        """The pair features (:func:`~nbo.models.response.pair_matrix`) and ``window_days``."""
        window = features[WINDOW].cast(pl.Float64).to_numpy()
        return np.column_stack([pair_matrix(features, self.campaign_types_), window])


def window_days(history: History) -> pl.LazyFrame:
    """campaign_id, window_days: the days of each campaign's window seen before ``as_of``.

    The whole window (``o_campaign_days``) for campaigns that ended; fewer for running ones.
    """
    end = pl.min_horizontal(pl.col("end_date") + timedelta(days=1), pl.lit(history.as_of_date))
    return history.campaigns.select(
        "campaign_id", (end - pl.col("start_date")).dt.total_days().cast(pl.Float64).alias(WINDOW)
    )
