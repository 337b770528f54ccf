"""Off-policy evaluation: what a target policy would have earned, from another policy's log.

Each logged row is one action (an offer in a member's list) taken in a context (the member on a
day) by the logging policy with a known probability ``p``; ``pi`` is the probability that the
target policy takes the same action there. The value of a policy is the expected reward summed
over its actions per context, averaged over contexts (one action per context is the classic
contextual bandit; a list of offers, each with its own inclusion probability, works the same
when an offer's reward does not depend on the other offers in the list).

* IPS (Horvitz–Thompson): ``sum_i w_i r_i / n_contexts`` with ``w = pi / p``.
* SNIPS (Swaminathan & Joachims 2015): the weighted mean reward per action ``sum w r / sum w``
  times the target's evaluable actions per context (1 in the classic case): a small bias for
  much less variance.
* DR (Dudík, Langford & Li 2011): the reward model's value of the target policy plus the
  weighted residuals ``w_i (r_i - q_i)``; unbiased when either the propensities or the model are.

Weights are clipped at ``clip`` (the count is reported); the 95 % interval is a percentile
bootstrap over contexts, seeded. Pure numpy: reading the log happens elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nbo.errors import EvaluationError

__all__ = [
    "ESTIMATORS",
    "LoggedBandit",
    "OpeEstimate",
    "TargetChoices",
    "effective_sample_size",
    "estimate_all",
    "evaluable_share",
]

ESTIMATORS = ("ips", "snips", "dr")
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class TargetChoices:
    """The target policy's possible actions: per action its context, the target's probability
    of taking it and the logging policy's (0 where the log can say nothing about it)."""

    context: NDArray[np.int64]
    target_probability: Floats
    logging_propensity: Floats


@dataclass(frozen=True)
class LoggedBandit:
    """Logged actions and what the target policy and the reward model say about them.

    Attributes
    ----------
    context
        Per row, the index (0..n_contexts-1) of its context; contexts are what the bootstrap
        resamples (members on a day, or members).
    logging_propensity
        Per row, the probability the logging policy took the logged action (> 0).
    target_probability
        Per row, the probability the target policy takes the logged action (0 if it never does).
    reward
        Per row, the observed reward.
    q_logged
        Per row, the reward model's prediction for the logged action (None: a zero model).
    q_target
        Per context, the reward model's expected value of the target policy's actions there,
        ``sum_a pi(a|x) q(x, a)`` (None: zero).
    n_contexts
        How many contexts; those with no logged row still count (their reward is zero).
    choices
        Every action the target policy may take in each context (None: one action per context,
        all evaluable; coverage is then reported as NaN).
    """

    context: NDArray[np.int64]
    logging_propensity: Floats
    target_probability: Floats
    reward: Floats
    n_contexts: int
    q_logged: Floats | None = None
    q_target: Floats | None = None
    choices: TargetChoices | None = None

    def check(self) -> None:
        """Raise EvaluationError naming the first inconsistent field."""
        n = self.reward.shape[0]
        for name in ("context", "logging_propensity", "target_probability", "q_logged"):
            values = getattr(self, name)
            if values is not None and values.shape != (n,):
                raise EvaluationError(f"off-policy log: {name} has shape {values.shape}, not {n}")
        if self.q_target is not None and self.q_target.shape != (self.n_contexts,):
            raise EvaluationError(
                f"off-policy log: q_target has {self.q_target.shape[0]} values for "
                f"{self.n_contexts} contexts"
            )
        if self.n_contexts < 1:
            raise EvaluationError("off-policy log: no contexts to evaluate")
        if n and (self.context.min() < 0 or self.context.max() >= self.n_contexts):
            raise EvaluationError("off-policy log: a context index is outside 0..n_contexts-1")
        if n and not (self.logging_propensity > 0).all():
            raise EvaluationError(
                "off-policy log: a logged action has logging propensity <= 0 (it could not "
                "have been taken); the log's propensities are wrong"
            )
        if n and ((self.target_probability < 0) | (self.target_probability > 1)).any():
            raise EvaluationError("off-policy log: a target probability is outside [0, 1]")


@dataclass(frozen=True)
class OpeEstimate:
    """One estimator's answer: the value, its bootstrap 95 % interval and its diagnostics."""

    estimator: str
    estimate: float
    low: float
    high: float
    ess: float
    """Effective sample size of the (clipped) weights, (sum w)^2 / sum w^2."""
    rows: int
    clip: float | None
    clipped: int
    """How many weights were above ``clip`` and cut to it."""
    coverage: float
    """Share of the target policy's choices (by probability) with logging propensity > 0."""


def effective_sample_size(weights: Floats) -> float:
    """(sum w)^2 / sum w^2; 0 for no or all-zero weights."""
    squares = float(np.square(weights).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


def evaluable_share(target_probability: Floats, logging_propensity: Floats) -> float:
    """Share of the target's choices (weighted by their probability) the log can evaluate."""
    total = float(target_probability.sum())
    if total <= 0:
        return float("nan")
    return float(target_probability[logging_propensity > 0].sum()) / total


def _per_context(log: LoggedBandit, weights: Floats) -> dict[str, Floats]:
    """Per context sums the estimators are ratios or means of (so the bootstrap reuses them)."""
    q_logged = log.q_logged if log.q_logged is not None else np.zeros_like(log.reward)
    q_target = log.q_target if log.q_target is not None else np.zeros(log.n_contexts)

    def total(values: Floats) -> Floats:
        return np.bincount(log.context, weights=values, minlength=log.n_contexts).astype(float)

    return {
        "weighted_reward": total(weights * log.reward),
        "weight": total(weights),
        "dr": q_target + total(weights * (log.reward - q_logged)),
        # SNIPS rescales the weights so their mean per context is the target's evaluable mass
        # there (how many of its actions the log can see), their expectation without clipping
        "mass": _evaluable_mass(log),
    }


def _evaluable_mass(log: LoggedBandit) -> Floats:
    """Per context, the target's expected number of actions with logging propensity > 0."""
    if log.choices is None:
        return np.ones(log.n_contexts)
    choices = log.choices
    evaluable = np.where(choices.logging_propensity > 0, choices.target_probability, 0.0)
    mass = np.bincount(choices.context, weights=evaluable, minlength=log.n_contexts)
    return mass.astype(np.float64)


def _values(sums: dict[str, Floats], index: NDArray[np.int64] | None = None) -> Floats:
    """IPS, SNIPS and DR on (a resample ``index`` of) the per-context sums."""
    pick = {k: (v if index is None else v[..., index]) for k, v in sums.items()}
    ips = pick["weighted_reward"].mean(axis=-1)
    weight = pick["weight"].sum(axis=-1)
    mass = pick["mass"].mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snips = np.where(weight > 0, pick["weighted_reward"].sum(axis=-1) / weight * mass, 0.0)
    dr = pick["dr"].mean(axis=-1)
    return np.asarray(np.stack([ips, snips, dr], axis=-1), dtype=np.float64)


def estimate_all(
    log: LoggedBandit,
    *,
    clip: float | None = None,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> dict[str, OpeEstimate]:
    """IPS, SNIPS and DR estimates of the target policy's value per context, with intervals.

    ``clip`` caps each importance weight (None: no cap). The interval is the 2.5-97.5 percentile
    of the estimates on ``n_bootstrap`` resamples of the contexts (with replacement), seeded.
    """
    log.check()
    if clip is not None and clip <= 0:
        raise EvaluationError(f"clip {clip} must be positive")
    raw = log.target_probability / log.logging_propensity
    weights = raw if clip is None else np.minimum(raw, clip)
    clipped = 0 if clip is None else int((raw > clip).sum())
    sums = _per_context(log, weights)
    point = _values(sums)
    rng = np.random.default_rng(seed)
    boot: list[Floats] = []
    block = max(1, 2_000_000 // log.n_contexts)  # bound the resample matrix's memory
    for start in range(0, n_bootstrap, block):
        size = min(block, n_bootstrap - start)
        index = rng.integers(0, log.n_contexts, size=(size, log.n_contexts))
        boot.append(_values(sums, index))
    low, high = (
        np.percentile(np.concatenate(boot), [2.5, 97.5], axis=0)
        if boot
        else np.full((2, 3), np.nan)
    )
    coverage = (
        evaluable_share(log.choices.target_probability, log.choices.logging_propensity)
        if log.choices is not None
        else float("nan")
    )
    ess = effective_sample_size(weights)
    return {
        name: OpeEstimate(
            estimator=name,
            estimate=float(point[k]),
            low=float(low[k]),
            high=float(high[k]),
            ess=ess,
            rows=int(log.reward.shape[0]),
            clip=clip,
            clipped=clipped,
            coverage=coverage,
        )
        for k, name in enumerate(ESTIMATORS)
    }
