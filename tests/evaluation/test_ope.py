"""Off-policy estimators against hand-computed values and simulated logs of known value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from nbo.errors import EvaluationError
from nbo.evaluation.ope import (
    LoggedBandit,
    TargetChoices,
    effective_sample_size,
    estimate_all,
)


def _five_rows(**extra: object) -> LoggedBandit:
    """One logged action in each of five contexts; weights pi / p = 2, 2, 0, 0.5, 3."""
    fields: dict[str, object] = {
        "context": np.arange(5),
        "logging_propensity": np.array([0.5, 0.25, 0.5, 0.8, 0.2]),
        "target_probability": np.array([1.0, 0.5, 0.0, 0.4, 0.6]),
        "reward": np.array([1.0, 0.0, 1.0, 1.0, 2.0]),
        "n_contexts": 5,
    }
    return LoggedBandit(**(fields | extra))  # type: ignore[arg-type]


def test_hand_computed_estimates() -> None:
    log = _five_rows(q_logged=np.full(5, 0.5), q_target=np.array([0.6, 0.4, 0.2, 0.5, 1.0]))
    result = estimate_all(log, n_bootstrap=200)
    # IPS: (2*1 + 2*0 + 0*1 + 0.5*1 + 3*2) / 5
    assert result["ips"].estimate == pytest.approx(8.5 / 5)
    # SNIPS: the same sum over the sum of the weights (7.5), one action per context
    assert result["snips"].estimate == pytest.approx(8.5 / 7.5)
    # DR: q_target + w (r - q) per context = 1.6, -0.6, 0.2, 0.75, 5.5
    assert result["dr"].estimate == pytest.approx(7.45 / 5)
    assert result["ips"].ess == pytest.approx(7.5**2 / 17.25)
    assert result["ips"].clipped == 0
    assert result["ips"].rows == 5
    for estimate in result.values():
        assert estimate.low <= estimate.estimate <= estimate.high


def test_clipping_caps_and_counts_the_weights() -> None:
    result = estimate_all(_five_rows(), clip=2.5, n_bootstrap=10)
    # weights 2, 2, 0, 0.5, 2.5 (the 3 is cut)
    assert result["ips"].estimate == pytest.approx((2 + 0.5 + 2.5 * 2) / 5)
    assert result["ips"].clipped == 1
    assert result["dr"].clip == 2.5
    assert result["ips"].ess == pytest.approx(7.0**2 / (4 + 4 + 0.25 + 6.25))


def test_lists_of_actions_and_coverage() -> None:
    """Two offers logged for member 0, one for member 1, none for member 2."""
    log = LoggedBandit(
        context=np.array([0, 0, 1]),
        logging_propensity=np.array([0.5, 0.5, 1.0]),
        target_probability=np.array([1.0, 0.5, 1.0]),
        reward=np.array([1.0, 0.0, 1.0]),
        n_contexts=3,
        choices=TargetChoices(
            context=np.array([0, 0, 1, 1, 2]),
            target_probability=np.array([1.0, 0.5, 1.0, 0.5, 1.0]),
            logging_propensity=np.array([0.5, 0.5, 1.0, 0.0, 0.0]),
        ),
    )
    result = estimate_all(log, n_bootstrap=50)
    assert result["ips"].estimate == pytest.approx((2 * 1 + 1 * 0 + 1 * 1) / 3)
    # weighted mean reward per action (3 / 4) times the evaluable actions per context (2.5 / 3)
    assert result["snips"].estimate == pytest.approx(3 / 4 * 2.5 / 3)
    assert result["dr"].coverage == pytest.approx(2.5 / 4)


def test_the_bootstrap_is_seeded() -> None:
    first = estimate_all(_five_rows(), n_bootstrap=100, seed=3)["dr"]
    again = estimate_all(_five_rows(), n_bootstrap=100, seed=3)["dr"]
    other = estimate_all(_five_rows(), n_bootstrap=100, seed=4)["dr"]
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)


@dataclass(frozen=True)
class Simulated:
    log: LoggedBandit
    truth: float
    means: np.ndarray  # true reward means, contexts x actions
    target: np.ndarray  # target policy probabilities, contexts x actions
    action: np.ndarray  # the logged action per context

    def with_model(self, model: np.ndarray, **extra: object) -> LoggedBandit:
        rows = np.arange(self.log.n_contexts)
        fields = self.log.__dict__ | {
            "q_logged": model[rows, self.action],
            "q_target": (self.target * model).sum(1),
        }
        return LoggedBandit(**(fields | extra))


def _simulate(seed: int, contexts: int = 400) -> Simulated:
    """Three actions whose reward means depend on a context feature; a fixed logging policy
    and a target that follows the feature."""
    rng = np.random.default_rng(seed)
    feature = rng.random(contexts)
    means = np.stack([0.2 + 0.3 * feature, 0.5 - 0.3 * feature, np.full(contexts, 0.35)], 1)
    logging = np.tile([0.6, 0.3, 0.1], (contexts, 1))
    target = np.where(feature[:, None] > 0.5, [0.1, 0.1, 0.8], [0.1, 0.8, 0.1])
    action = (rng.random(contexts)[:, None] > logging.cumsum(1)).sum(1)
    rows = np.arange(contexts)
    reward = (rng.random(contexts) < means[rows, action]).astype(float)
    log = LoggedBandit(
        context=rows,
        logging_propensity=logging[rows, action],
        target_probability=target[rows, action],
        reward=reward,
        n_contexts=contexts,
    )
    return Simulated(log, float((target * means).sum(1).mean()), means, target, action)


def test_ips_and_dr_are_unbiased_on_simulated_logs() -> None:
    errors: dict[str, list[float]] = {"ips": [], "dr": []}
    for seed in range(150):
        sim = _simulate(seed)
        result = estimate_all(sim.with_model(sim.means + 0.1), n_bootstrap=1)  # a biased model
        for name in errors:
            errors[name].append(result[name].estimate - sim.truth)
    for name, values in errors.items():
        spread = np.std(values) / np.sqrt(len(values))
        assert abs(np.mean(values)) < 3 * spread, name
        assert spread < 0.01  # the check above is tight, not vacuous


def test_dr_is_the_model_when_the_model_is_perfect() -> None:
    sim = _simulate(0)
    rows = np.arange(sim.log.n_contexts)
    exact = sim.with_model(sim.means, reward=sim.means[rows, sim.action])  # noiseless rewards
    result = estimate_all(exact, n_bootstrap=1)
    assert result["dr"].estimate == pytest.approx(sim.truth)
    assert result["ips"].estimate != pytest.approx(sim.truth)


def test_dr_is_ips_when_the_model_is_zero() -> None:
    sim = _simulate(1)
    result = estimate_all(sim.with_model(np.zeros_like(sim.means)), n_bootstrap=1)
    assert result["dr"].estimate == pytest.approx(result["ips"].estimate)
    assert result["dr"].estimate == pytest.approx(
        estimate_all(sim.log, n_bootstrap=1)["ips"].estimate
    )


def test_effective_sample_size_of_equal_weights_is_their_count() -> None:
    assert effective_sample_size(np.full(7, 0.3)) == pytest.approx(7)
    assert effective_sample_size(np.zeros(3)) == 0.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"logging_propensity": np.array([0.5, 0.0, 0.5, 0.8, 0.2])}, "propensity <= 0"),
        ({"target_probability": np.array([1.5, 0.5, 0.0, 0.4, 0.6])}, "outside \\[0, 1\\]"),
        ({"context": np.array([0, 1, 2, 3, 5])}, "context index"),
        ({"q_target": np.zeros(4)}, "q_target has 4 values for 5 contexts"),
        ({"reward": np.zeros(4)}, "context has shape"),
    ],
)
def test_bad_logs_raise_evaluation_error(extra: dict[str, object], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        estimate_all(_five_rows(**extra))


def test_bad_clip_raises() -> None:
    with pytest.raises(EvaluationError, match="clip"):
        estimate_all(_five_rows(), clip=0)


def test_policy_evaluation_counts_old_decisions_for_redemptions_only() -> None:
    """Member 1's decision predates p_buy/value/cost: it counts for redemptions only."""
    from datetime import date

    import polars as pl

    from nbo.pipelines.policy_eval import evaluate_policy

    day = date(2024, 4, 1)
    outcomes = pl.DataFrame(
        {
            "member_id": [1, 2, 2],
            "day": [day] * 3,
            "channel": ["app"] * 3,
            "offer_id": ["a", "a", "b"],
            "propensity": [1.0, 0.5, 1.0],
            "p_redeem": [0.2, 0.3, 0.1],
            "incremental_value": [None, 1.0, 0.5],
            "p_buy": [None, 0.2, 0.1],
            "value": [None, 2.0, 1.0],
            "cost": [None, 0.5, 0.5],
            "redeemed": [1.0, 1.0, 0.0],
            "incremental_reward": [None, 1.1, -0.1],
        }
    )
    target = pl.DataFrame(
        {
            "member_id": [1, 2],
            "day": [day] * 2,
            "channel": ["app"] * 2,
            "offer_id": ["a", "a"],
            "propensity": [1.0, 1.0],
            "p_redeem": [0.2, 0.3],
            "incremental_value": [None, 1.0],
        }
    )
    result = evaluate_policy(outcomes, target, clip=None, n_bootstrap=20)
    assert result.decisions_without_value == 1
    assert result.contexts == 2
    # redemptions: member 1 weight 1 * 1, member 2 weight 2 * 1 on "a", 0 on "b"
    assert result.redemptions["ips"].estimate == pytest.approx((1 + 2) / 2)
    assert result.logged_redemptions == pytest.approx(1.0)
    assert result.incremental_value is not None
    # incremental value: member 2 only, weight 2 on "a" (1.1)
    assert result.incremental_value["ips"].estimate == pytest.approx(2.2)
    assert result.incremental_value["dr"].estimate == pytest.approx(1.0 + 2 * (1.1 - 1.0))
    assert result.logged_incremental_value == pytest.approx(1.0)
