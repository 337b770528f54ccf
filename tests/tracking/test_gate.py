"""The promotion gate compares numbers from one window only (issue 16, item 1).

Fast: one bundle trained on the synthetic club, logged several times with the metrics each test
needs; the like-for-like numbers are recorded as the pipeline records them.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from nbo.tracking.bundle import Bundle
from nbo.tracking.gate import Window, checks, lfl_key, lfl_windows, passes
from nbo.tracking.promotion import (
    NotComparableError,
    WindowNumbers,
    promote,
    record_comparison,
)
from nbo.tracking.registry import MODEL_NAME, log_bundle
from tests.tracking.conftest import AS_OF

NUMBERS = {"recall_at_10": 0.30, "ndcg_at_10": 0.40, "offer_auc": 0.70, "visit_mae": 1.5}


def _log(bundle: Bundle, club: Path, as_of: datetime, metrics: dict[str, float]) -> tuple[str, str]:
    bundle.as_of = as_of
    return log_bundle(
        bundle,
        experiment="gate",
        params={"as_of": as_of.date().isoformat()},
        metrics=metrics,
        example=(str(club), [1, 2]),
    )


def _champion() -> str:
    return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion").version)


def test_checks_compare_pairs_of_one_window() -> None:
    window = Window("14d", NUMBERS | {"visit_mae": 1.6}, NUMBERS)
    found = {c.metric: c for c in checks([window])}
    assert found["visit_mae"].verdict == "worse"  # lower is better
    assert found["recall_at_10"].verdict == "ok"
    assert not passes(found.values())
    assert passes(checks([window], tolerance=0.1))  # 1.6 is within 10 % of 1.5
    no_offers = Window("14d", NUMBERS | {"offer_auc": math.nan}, NUMBERS | {"offer_auc": math.nan})
    verdicts = {c.metric: c.verdict for c in checks([no_offers])}
    assert verdicts["offer_auc"] == "n/a" and passes(checks([no_offers]))
    lost = Window("14d", NUMBERS | {"offer_auc": math.nan}, NUMBERS)
    assert not passes(checks([lost]))  # the champion has it on this window, the candidate not
    empty = Window("14d", {}, {})
    assert not passes(checks([empty]))  # nothing compared: no reason to replace the champion


def test_different_windows_are_never_compared(
    bundle: Bundle, synth_club: Path, store: Path
) -> None:
    _log(bundle, synth_club, AS_OF, {f"holdout_{k}": v for k, v in NUMBERS.items()})
    assert promote().promoted
    # much "better" holdout numbers, but measured after another date: not comparable
    _log(bundle, synth_club, datetime(2024, 5, 19), {"holdout_recall_at_10": 0.9})
    with pytest.raises(NotComparableError, match="not measured on the same window"):
        promote()
    assert _champion() == "1"


def test_promote_refuses_a_worse_candidate_with_like_for_like_numbers(
    bundle: Bundle, synth_club: Path, store: Path
) -> None:
    _log(bundle, synth_club, AS_OF, {})
    assert promote().promoted
    run_id, version = _log(bundle, synth_club, datetime(2024, 5, 19), {})
    worse = WindowNumbers(
        14, datetime(2024, 5, 5), NUMBERS | {"ndcg_at_10": 0.35}, NUMBERS, "as deployed"
    )
    same = WindowNumbers(28, datetime(2024, 4, 21), NUMBERS, NUMBERS, "as deployed")
    record_comparison(run_id, "1", [worse, same])

    refused = promote()
    assert not refused.promoted and _champion() == "1"
    assert "14d ndcg_at_10: candidate 0.3500 vs champion 0.4000 (worse)" in refused.reasons
    assert "28d ndcg_at_10: candidate 0.4000 vs champion 0.4000 (ok)" in refused.reasons
    run = MlflowClient().get_run(run_id).data
    assert run.metrics[lfl_key(14, "candidate", "ndcg_at_10")] == 0.35
    assert run.metrics[lfl_key(14, "champion", "ndcg_at_10")] == 0.40
    assert lfl_windows(run.metrics) == [14, 28]
    assert run.tags["lfl.cut_14d"] == "2024-05-05" and run.tags["lfl.champion_version"] == "1"
    assert run.tags["promotion.verdict"] == "kept champion 1"
    verdict = json.loads(
        Path(
            MlflowClient().download_artifacts(run_id, "promotion.json", str(store / "dl"))
        ).read_text()
    )
    assert verdict["promoted"] is False and len(verdict["checks"]) == 8

    # numbers recorded again (e.g. against a changed champion) replace the old ones whole
    record_comparison(run_id, "1", [same])
    assert promote().promoted and _champion() == version
    assert MlflowClient().get_run(run_id).data.tags["promotion.verdict"] == "promoted"


def test_numbers_against_another_champion_do_not_count(
    bundle: Bundle, synth_club: Path, store: Path
) -> None:
    _log(bundle, synth_club, AS_OF, {})
    promote()
    run_id, _ = _log(bundle, synth_club, datetime(2024, 5, 19), {})
    record_comparison(
        run_id, "7", [WindowNumbers(14, datetime(2024, 5, 5), NUMBERS, NUMBERS, "as deployed")]
    )
    with pytest.raises(NotComparableError):
        promote()
    assert promote(force=True).promoted
