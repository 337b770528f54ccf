"""Category propensity on a club with known rhythms."""

from __future__ import annotations

import numpy as np
import pytest

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.models.propensity import CategoryPropensity
from tests.models.clubs import rhythm_club


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return History.at(
        ClubData(rhythm_club(tmp_path_factory.mktemp("rhythm") / "club")), "2024-03-25"
    )


def test_weekly_category_is_near_certain(history: History) -> None:
    model = CategoryPropensity(max_iter=30).fit(history)
    scores = model.predict_proba(history, np.array([1, 2]))
    member1 = dict(scores.filter(scores["member_id"] == 1).select("category", "p_buy").iter_rows())
    assert member1["MILK"] > 0.8
    # member 1 never buys the random categories: they rank below milk and bread
    others = [p for c, p in member1.items() if c.startswith("CAT")]
    assert others and max(others) < member1["MILK"]
    assert scores["p_buy"].is_between(0, 1).all()


def test_deterministic(history: History) -> None:
    a = CategoryPropensity(max_iter=20).fit(history).predict_proba(history)
    b = CategoryPropensity(max_iter=20).fit(history).predict_proba(history)
    assert a.equals(b)
