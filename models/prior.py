"""The documented priors of the pair models, for a club whose campaigns have taught nothing yet.

A club starts with receipts. Until its campaigns have audiences, offers and redemptions, the
offer response and purchase propensity models have no examples; rather than refuse to train,
each records why (``reason_``) and predicts from these priors, which read nothing but the
member's receipts (the pair features of :mod:`nbo.features.offers`):

* ``p_buy`` (purchase propensity without the offer): the member's own rate of baskets holding
  any of the offer's products over the last 8 weeks, plus a pseudo-count of
  :data:`PSEUDO_BASKETS` (so a member who never bought them is not certain not to), as a
  Poisson process over the offer's window::

      p_buy = 1 − exp(−(mo_baskets_8w + PSEUDO_BASKETS) / 56 × window_days)

* ``p_redeem``: a share of the members who buy the products while holding the offer redeem
  it; the offer can add buyers, so the chance to buy is taken as ``p_buy`` plus
  :data:`PRIOR_NEW_BUYERS` of the rest::

      p_redeem = redeem_share × (p_buy + PRIOR_NEW_BUYERS × (1 − p_buy))

These are assumptions, flagged as such in the bundle's params, the training log and ``nbo
decide``'s output; the exploration of the decision policy (Thompson sampling with exact
propensities, :mod:`nbo.decisioning.explore`) spreads the first campaigns so that their
redemptions teach the response model at the next ``nbo train``. See ``docs/cold-start.md``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["PRIOR_NEW_BUYERS", "PSEUDO_BASKETS", "purchase_prior", "redeem_prior"]

PRIOR_WEEKS = 8  # the window of ``mo_baskets_8w``
PSEUDO_BASKETS = 0.1  # baskets with the products added to every member's last 8 weeks
PRIOR_NEW_BUYERS = 0.05  # share of the members who would not buy whom the offer makes buy


def purchase_prior(features: pl.DataFrame, window: str = "o_campaign_days") -> np.ndarray:
    """P(buy any of the offer's products within its window) from the member's recent baskets."""
    baskets = features["mo_baskets_8w"].cast(pl.Float64).fill_null(0.0).to_numpy()
    days = features[window].cast(pl.Float64).fill_null(0.0).to_numpy()
    rate = (baskets + PSEUDO_BASKETS) / (7.0 * PRIOR_WEEKS)
    return np.asarray(-np.expm1(-rate * np.clip(days, 0.0, None)), dtype=np.float64)


def redeem_prior(features: pl.DataFrame, redeem_share: float) -> np.ndarray:
    """P(redeem the offer): ``redeem_share`` of the members who buy the products with it."""
    p_buy = purchase_prior(features)
    return np.asarray(redeem_share * (p_buy + PRIOR_NEW_BUYERS * (1.0 - p_buy)), np.float64)
