"""Tree look-up tables (issue 4): the same raw scores as scikit-learn's own prediction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from nbo.models.boosted import TreeTables, raw_predict


def _data(rows: int = 3_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    x[:, 2] = rng.integers(0, 4, rows)  # few distinct values: thresholds at every bin
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values go one way at each split
    y = (np.nan_to_num(x[:, 0]) + x[:, 2] * 0.3 + rng.normal(size=rows) > 0.5).astype(float)
    return x, y


@pytest.mark.parametrize("leaves", [3, 7, 31])  # 31 leaves: some trees are walked instead
def test_tables_give_the_models_own_raw_scores(leaves: int) -> None:
    x, y = _data()
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=leaves, random_state=0)
    model.fit(x, y)
    fresh, _ = _data(seed=1)
    fresh[0] = [np.inf, -np.inf, 99.0, -99.0, np.nan, 0.0]  # beyond the training range
    expected = model._raw_predict(fresh)[:, 0]
    assert np.array_equal(raw_predict(model, fresh), expected)
    tables = TreeTables.of(model)
    assert tables is not None and tables is TreeTables.of(model)  # built once per model


@pytest.mark.parametrize("loss", ["poisson", "absolute_error"])
def test_regressors_predict_the_same_numbers(loss: str) -> None:
    x, y = _data()
    model = HistGradientBoostingRegressor(loss=loss, max_iter=20, max_leaf_nodes=15).fit(x, y)
    predicted = model._loss.link.inverse(raw_predict(model, x))
    assert np.array_equal(predicted, model.predict(x))


def test_categorical_models_keep_scikit_learns_path() -> None:
    x, y = _data()
    x[:, 2] = np.nan_to_num(x[:, 2])
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[2]).fit(x, y)
    assert TreeTables.of(model) is None
    assert np.array_equal(raw_predict(model, x), model._raw_predict(x)[:, 0])
