"""Every model of the bundle follows scikit-learn's estimator conventions.

``__init__`` only stores its parameters, fitted state ends in ``_``, ``clone`` gives an unfitted
copy with the same parameters, and ``set_params`` changes what ``fit`` learns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.models.affinity import ProductAffinity
from nbo.models.cf import CollaborativeFilter
from nbo.models.params import check_params
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from tests.models.uplift_club import AS_OF as UPLIFT_AS_OF
from tests.models.uplift_club import uplift_club

AS_OF = datetime(2024, 4, 1)
ESTIMATORS = [ProductAffinity, OfferPurchase, OfferResponse, OfferUplift, VisitTiming]
ALL = [*ESTIMATORS, CollaborativeFilter]


def _other(value: Any) -> Any:
    """A value of the same kind as ``value`` that differs from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if value is None:
        return 3
    raise AssertionError(f"no other value for {value!r}")


def _plain_params(estimator: type[BaseEstimator]) -> dict[str, Any]:
    """The parameters that are plain values (not sub-estimators), each changed."""
    return {
        name: _other(p.default)
        for name, p in inspect.signature(estimator).parameters.items()
        if name != "cf"
    }


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.__name__)
def test_init_stores_every_parameter_unchanged(estimator: type[BaseEstimator]) -> None:
    params = _plain_params(estimator)
    model = estimator(**params)
    assert vars(model) == params | ({"cf": None} if estimator is ProductAffinity else {})
    assert model.get_params(deep=False) == vars(model)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.__name__)
def test_clone_round_trips_the_parameters(estimator: type[BaseEstimator]) -> None:
    model = estimator(**_plain_params(estimator))
    copy = clone(model)
    assert copy is not model
    assert copy.get_params() == model.get_params()
    assert repr(copy) == repr(model)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.__name__)
def test_set_params_sets_and_rejects_unknown_names(estimator: type[BaseEstimator]) -> None:
    model = estimator()
    changed = _plain_params(estimator)
    assert model.set_params(**changed) is model
    assert {k: model.get_params()[k] for k in changed} == changed
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(no_such_parameter=1)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.__name__)
def test_fit_rejects_a_parameter_out_of_its_range_by_name(estimator: type[BaseEstimator]) -> None:
    name = "factors" if estimator is CollaborativeFilter else "max_iter"
    model = estimator(**{name: 0})  # __init__ stores it: no validation there
    with pytest.raises(ValueError, match=rf"{name}: Input should be greater than 0 \(got 0\)"):
        model.fit(None)  # checked before the data is touched
    model.set_params(**{name: np.int64(3)})
    check_params(model)  # NumPy integers (from a parameter grid) are fine


def test_the_collaborative_filter_is_a_nested_parameter() -> None:
    model = ProductAffinity(cf=CollaborativeFilter(factors=8))
    assert model.get_params()["cf__factors"] == 8
    model.set_params(cf__factors=4, cf__iterations=2)
    copy = clone(model)
    assert copy.cf is not model.cf
    assert copy.get_params()["cf__factors"] == 4 and copy.get_params()["cf__iterations"] == 2


@pytest.fixture(scope="module")
def synth_history(synth_club: Path) -> History:
    return History.at(ClubData(synth_club), AS_OF)


@pytest.fixture(scope="module")
def uplift_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A club with randomized campaigns: the uplift model measures something there."""
    return History.at(
        ClubData(uplift_club(tmp_path_factory.mktemp("uplift") / "club")), UPLIFT_AS_OF
    )


SMALL_AFFINITY = {
    "n_repurchase": 10, "n_cf": 5, "n_popular": 5, "n_rankers": 1, "max_iter": 10,
    "train_cutoffs": 1, "cf": CollaborativeFilter(factors=4, iterations=2),
}  # fmt: skip
SMALL_TIMING = {"n_windows": 4, "max_iter": 10, "n_threads": 1}


def _rows(model: ProductAffinity) -> int:
    return model.train_rows_


# (estimator, small parameters, a change, what the fitted model shows of it)
CHANGES: list[tuple[type[BaseEstimator], dict[str, Any], dict[str, Any], Callable[[Any], Any]]] = [
    (ProductAffinity, SMALL_AFFINITY, {"cf__factors": 6}, lambda m: m.cf_.als_.factors),
    (ProductAffinity, SMALL_AFFINITY, {"negative_share": 0.5}, _rows),
    (OfferPurchase, {"max_iter": 10}, {"max_iter": 3}, lambda m: m.model_.n_iter_),
    (OfferResponse, {"max_iter": 10}, {"max_iter": 3}, lambda m: m.model_.n_iter_),
    (OfferUplift, {"max_iter": 5}, {"min_control_pairs": 10**9}, lambda m: m.measured_),
    (OfferUplift, {"max_iter": 5}, {"max_iter": 3}, lambda m: m.learner_.tau_treated.n_iter_),
    (VisitTiming, SMALL_TIMING, {"n_windows": 2}, lambda m: len(m.cutoffs_)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("estimator", "small", "change", "shown"),
    CHANGES,
    ids=[f"{e.__name__}-{next(iter(c))}" for e, _, c, _ in CHANGES],
)
def test_set_params_changes_what_fit_learns(
    request: pytest.FixtureRequest,
    estimator: type[BaseEstimator],
    small: dict[str, Any],
    change: dict[str, Any],
    shown: Callable[[Any], Any],
) -> None:
    club = "uplift_history" if estimator is OfferUplift else "synth_history"
    history: History = request.getfixturevalue(club)
    model = estimator(**small).fit(history)
    before = shown(model)
    copy = clone(model)
    assert not [name for name in vars(copy) if name.endswith("_")]  # clone is unfitted
    changed = copy.set_params(**change).fit(history)
    assert not np.array_equal(shown(changed), before)
    original = {name: model.get_params()[name] for name in change}
    assert shown(clone(changed).set_params(**original).fit(history)) == before  # and back


def test_an_affinity_pickled_with_cf_params_loads_with_its_cf() -> None:
    """Bundles saved before ``cf`` replaced ``cf_params`` still load, refit and clone."""
    old = {**_plain_params(ProductAffinity), "cf_params": {"factors": 8}, "ranker_": "fitted"}
    model = ProductAffinity.__new__(ProductAffinity)
    model.__setstate__(dict(old))
    assert vars(model)["ranker_"] == "fitted" and "cf_params" not in vars(model)
    assert model.cf is not None
    assert model.cf.factors == 8 and model.cf.random_state == old["random_state"]
    assert clone(model).get_params()["cf__factors"] == 8
    none = {**old, "cf_params": None}
    model.__setstate__(none)
    assert model.cf is None
