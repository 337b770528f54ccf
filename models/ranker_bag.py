"""Several gradient-boosted rankers on different draws of negatives, averaged."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["RankerBag", "bag_mask", "split_gain_importance"]


class RankerBag:
    """Rankers fitted on different draws of negatives; their probabilities are averaged.

    Uniform negative sampling shifts every score's log-odds by the same constant, so one ranker
    on a sample ranks as it would on all rows while training several times faster. But which
    negatives are drawn moves Complete Journey's recall@10 ratio to P-TopFreq by up to ±0.013
    on a date; averaging rankers on disjoint draws narrows that and gains a little on average.
    """

    def __init__(self, rankers: list[HistGradientBoostingClassifier]) -> None:
        self.rankers = rankers

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        probabilities: np.ndarray = np.mean(
            [ranker.predict_proba(features) for ranker in self.rankers], axis=0
        )
        return probabilities


def bag_mask(labels: np.ndarray, draw: np.ndarray, k: int, share: float) -> np.ndarray:
    """Rows ranker ``k`` learns from: every positive, the negatives drawn in its slice.

    Slice k is ``[k × share, (k + 1) × share)`` modulo 1, so the slices are disjoint while
    ``n_rankers × share ≤ 1`` and together cover the draws below ``n_rankers × share``.
    """
    mask: np.ndarray = (labels == 1) | ((draw - k * share) % 1.0 < share)
    return mask


def split_gain_importance(model: RankerBag, names: list[str]) -> dict[str, float]:
    """Share of the total split gain per feature ``names`` (what the trees actually used).

    Reads the fitted trees' node arrays; permutation importance would cost a prediction per
    feature. Empty if a future scikit-learn stores its trees differently.
    """
    gains = np.zeros(len(names))
    try:
        for ranker in model.rankers:
            for iteration in ranker._predictors:
                for tree in iteration:
                    nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
                    np.add.at(gains, nodes["feature_idx"], nodes["gain"])
    except (AttributeError, KeyError, IndexError, ValueError):
        return {}
    total = gains.sum()
    return {name: float(g / total) if total else 0.0 for name, g in zip(names, gains, strict=True)}
