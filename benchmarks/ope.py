"""Off-policy estimators on simulated logs of known value: interval coverage over seeds.

Each seed draws contexts (a member feature), logs one of several offers with a stochastic
softmax policy whose propensities are known, and rewards it with a Bernoulli of known mean. A
different (sharper, differently ranked) target policy is evaluated by IPS, SNIPS and DR with an
imperfect reward model (biased and noisy). The table says how often the target's true value
lies inside each estimator's bootstrap 95 % interval (the aim for DR: at least 90 %), with the
mean error, interval width and effective sample size:

    .venv/bin/python benchmarks/ope.py                 # 50 seeds, 2,000 contexts
    .venv/bin/python benchmarks/ope.py --seeds 20 --contexts 500 --clip 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from nbo.evaluation.ope import ESTIMATORS, LoggedBandit, OpeEstimate, estimate_all

Floats = NDArray[np.float64]
ACTIONS = 5


def reward_means(feature: Floats) -> Floats:
    """True redemption probability of each offer (columns) for each context's feature."""
    slope = np.linspace(-0.3, 0.3, ACTIONS)
    base = np.linspace(0.15, 0.35, ACTIONS)
    return np.asarray(np.clip(base + slope * (feature[:, None] - 0.5), 0.01, 0.99))


def softmax(scores: Floats, temperature: float) -> Floats:
    z = np.exp((scores - scores.max(axis=1, keepdims=True)) / temperature)
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def logging_policy(feature: Floats) -> Floats:
    """A soft policy that ranks the offers by a stale score (every offer keeps some chance)."""
    stale = reward_means(1 - feature)
    return softmax(stale, 0.15)


def target_policy(feature: Floats) -> Floats:
    """A sharper policy that follows the true ranking."""
    return softmax(reward_means(feature), 0.05)


def true_value(draws: int = 1_000_000, seed: int = 12345) -> float:
    """The target's value over the context distribution (Monte Carlo over contexts only)."""
    feature = np.random.default_rng(seed).random(draws)
    return float((target_policy(feature) * reward_means(feature)).sum(axis=1).mean())


def simulate(seed: int, contexts: int) -> LoggedBandit:
    rng = np.random.default_rng(seed)
    feature = rng.random(contexts)
    logging, target, means = logging_policy(feature), target_policy(feature), reward_means(feature)
    action = (rng.random(contexts)[:, None] > logging.cumsum(axis=1)).sum(axis=1)
    action = np.minimum(action, ACTIONS - 1)  # float round-off at the top of the cumsum
    rows = np.arange(contexts)
    reward = (rng.random(contexts) < means[rows, action]).astype(np.float64)
    # an imperfect reward model: 20 % too high and noisy per (context, offer)
    model = np.clip(means * 1.2 + rng.normal(0, 0.05, means.shape), 0, 1)
    return LoggedBandit(
        context=rows,
        logging_propensity=logging[rows, action],
        target_probability=target[rows, action],
        reward=reward,
        n_contexts=contexts,
        q_logged=model[rows, action],
        q_target=(target * model).sum(axis=1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--contexts", type=int, default=2_000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--clip", type=float, default=None, help="weight cap (default none)")
    args = parser.parse_args()
    truth = true_value()
    started = time.perf_counter()
    results: dict[str, list[OpeEstimate]] = {name: [] for name in ESTIMATORS}
    for seed in range(args.seeds):
        log = simulate(seed, args.contexts)
        found = estimate_all(log, clip=args.clip, n_bootstrap=args.bootstrap, seed=seed)
        for name in ESTIMATORS:
            results[name].append(found[name])
    table = Table(
        title=f"OPE on simulated logs: {args.seeds} seeds x {args.contexts:,} contexts, "
        f"{ACTIONS} offers, true value {truth:.4f}, clip {args.clip}",
        title_justify="left",
    )
    for column in ("estimator", "95% CI covers truth", "mean error", "RMSE", "mean CI width",
                   "mean ESS", "clipped"):  # fmt: skip
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, runs in results.items():
        errors = np.array([r.estimate - truth for r in runs])
        covered = np.mean([r.low <= truth <= r.high for r in runs])
        table.add_row(
            name,
            f"{covered:.0%}",
            f"{errors.mean():+.4f}",
            f"{np.sqrt(np.square(errors).mean()):.4f}",
            f"{np.mean([r.high - r.low for r in runs]):.4f}",
            f"{np.mean([r.ess for r in runs]):,.0f}",
            f"{np.mean([r.clipped for r in runs]):.1f}",
        )
    console = Console(width=120)
    console.print(table)
    console.print(f"{time.perf_counter() - started:.1f} s", markup=False)


if __name__ == "__main__":
    main()
