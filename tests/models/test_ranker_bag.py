from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from nbo.models.ranker_bag import RankerBag, bag_mask, split_gain_importance


def test_rankers_learn_from_disjoint_negatives_and_every_positive() -> None:
    labels = np.array([1, 0, 0, 0, 0, 0, 1, 0])
    draw = np.array([0.05, 0.05, 0.25, 0.45, 0.65, 0.85, 0.95, 0.99])
    masks = [bag_mask(labels, draw, k, 0.2) for k in range(5)]
    for mask in masks:
        assert mask[labels == 1].all()
    negatives = np.sum([mask & (labels == 0) for mask in masks], axis=0)
    assert negatives[labels == 0].tolist() == [1] * 6  # each negative in exactly one ranker


def _fitted(seed: int) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)  # only feature 0 matters
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    return model, x


def test_a_bag_averages_its_rankers_probabilities() -> None:
    (a, x), (b, _) = _fitted(0), _fitted(1)
    bag = RankerBag([a, b])
    assert np.allclose(bag.predict_proba(x), (a.predict_proba(x) + b.predict_proba(x)) / 2)


def test_split_gain_importance_shares_sum_to_one_and_favour_the_signal() -> None:
    model, _ = _fitted(0)
    shares = split_gain_importance(RankerBag([model]), ["signal", "noise_1", "noise_2"])
    assert set(shares) == {"signal", "noise_1", "noise_2"}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert shares["signal"] > 0.8
