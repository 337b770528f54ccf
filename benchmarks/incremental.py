"""nbo's decisions against the truth: synthetic clubs with known counterfactuals.

For each seed: a club with randomized campaigns and their truth (``generate_club(...,
counterfactuals=True)``), the decision models trained as of the start of the first of the last
``--campaigns`` campaigns (every earlier campaign has ended, each with its controls), then at
each of those campaigns' start the engine decides which of its offers every audience member
gets (default policy, objective incremental margin, no exploration, as in the decision
back-test ``decision_backtest``). Each method is scored with
``nbo.evaluation.counterfactual``: nbo; ranking by p_redeem, by p_buy and at random, each
taking per member and campaign as many of the eligible offers as nbo gave; the oracle
(ranking by the true incremental profit, same counts) and the oracle free of the counts (every
offer that truly pays, up to the slots). Targets (issue 14): on every seed nbo's true
incremental profit is positive and ≥ 0.6 × the oracle's, nbo − p_redeem ≥ 0.5 × |p_redeem|,
and nbo's expected incremental value is within ±30 % of its true one.

    .venv/bin/python benchmarks/incremental.py                 # seeds 0 1 2, 20,000 members
    .venv/bin/python benchmarks/incremental.py --seeds 0 --members 10000   # a quick look

20,000 members (5,000 products, 52 weeks: 13 campaigns) take about 1.5 minutes per seed on a
quiet 2-core machine, most of it training. Larger clubs add time, not information about the
models: the uplift model already learns from its 100,000-pair sample at this size, and the
truth is an exact expectation, so the scores carry no sampling noise given the decisions.

Only the models the decisions use are fitted (offer response, purchase propensity, uplift and
visit timing, as ``train_bundle`` fits them); the product-affinity model is not (it takes
longer than the rest and no decision reads it). Diagnostic rows: ``nbo's estimate, no list
rules`` ranks the eligible offers by nbo's own incremental_value at nbo's counts, without the
engine's list rules (one offer per category, slots for new products, the member's cost cap),
so the gap to nbo is what those rules cost against the truth; ``nbo, truth's economics``
decides again with the policy's margin set to the generator's and the club paying the whole
coupon (``club_funded_share`` 1), the truth's definitions of value and cost, as a club sets
its own economics in its policy; it is scored against the oracle and ranking by p_redeem at
its own counts (two more rows), and the targets are printed for it too. Each seed also prints
nbo's estimates beside the truth over its decisions, and its decisions and the oracle's by
response type.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table
from scipy import stats

import nbo
from nbo.data.io import ClubData
from nbo.data.synth import generate_club, read_truth, truth_dir
from nbo.decisioning.engine import decide
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static, with_contacts
from nbo.evaluation.counterfactual import (
    BUY,
    NBO,
    ORACLE,
    ORACLE_FREE,
    RANDOM,
    REDEEM,
    Targets,
    method_summary,
    offers_per_list,
    positive_per_list,
    random_per_list,
    targets,
    top_per_list,
    true_incremental,
)
from nbo.features.history import History
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.pipelines.candidates import active_offers, build_candidates, build_members

CHANNEL = "email"
TRUTH_ECONOMICS = "nbo, truth's economics"
NO_LIST_RULES = "nbo's estimate, no list rules"
ECONOMICS_ORACLE = "oracle at its counts"
ECONOMICS_REDEEM = "p_redeem at its counts"
DIAGNOSTICS = (NO_LIST_RULES, TRUTH_ECONOMICS, ECONOMICS_ORACLE, ECONOMICS_REDEEM)
METHODS = (NBO, REDEEM, BUY, RANDOM, ORACLE, ORACLE_FREE)


@dataclass(frozen=True)
class _Models:
    response: OfferResponse
    purchase: OfferPurchase
    uplift: OfferUplift


@dataclass(frozen=True)
class SeedResult:
    seed: int
    summary: pl.DataFrame  # method_summary of every method and the diagnostic rows
    by_type: pl.DataFrame  # response_type, decisions and true profit of nbo's and the oracle's
    targets: Targets
    economics: Targets  # the same for nbo with the truth's economics, at its own counts
    measured: str  # the uplift model's own account of what it learned from
    diagnosis: dict[str, dict[str, float]]  # estimates against the truth, nbo and the variant
    seconds: dict[str, float]  # wall seconds per stage: generate, train, decide and score


def _policy() -> Policy:
    policy = Policy()
    exploration = policy.exploration.model_copy(update={"share": 0.0})
    return policy.model_copy(update={"exploration": exploration})


def _truth_policy(policy: Policy, margin: float) -> Policy:
    economics = policy.economics.model_copy(update={"margin": margin, "club_funded_share": 1.0})
    return policy.model_copy(update={"economics": economics})


def _fit(club: ClubData, as_of: datetime) -> tuple[_Models, VisitTiming]:
    history = History.at(club, as_of)
    models = _Models(
        response=OfferResponse().fit(history),
        purchase=OfferPurchase().fit(history),
        uplift=OfferUplift().fit(history),
    )
    return models, VisitTiming().fit(history)


def _decide(
    club: ClubData, models: _Models, timing: VisitTiming, policy: Policy, campaign: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """nbo's decisions and the eligible rows for one campaign, at its start."""
    at = datetime.combine(campaign["start_date"], datetime.min.time())
    history = History.at(club, at)
    offers = active_offers(club, at, campaign["campaign_id"])
    candidates = build_candidates(history, models, offers, policy)
    members = build_members(history, timing, policy)
    decided = decide(candidates, members, policy, at=at, channel=CHANNEL).decisions
    static = plan_static(candidates, members, policy, at=at, channel=CHANNEL).collect()
    eligible = with_contacts(static, None, policy, at=at, channel=CHANNEL)
    return decided, eligible


def _diagnosis(nbo: pl.DataFrame) -> dict[str, float]:
    """Means over nbo's decisions of its estimates and the truth they estimate."""
    row = nbo.select(
        uplift=pl.col("uplift").mean(),
        true_uplift=pl.col("true_uplift").mean(),
        value=pl.col("value").mean(),
        true_value=pl.col("true_value").mean(),
        p_redeem=pl.col("p_redeem").mean(),
        p_redeem_treated=pl.col("p_redeem_treated").mean(),
        cost=pl.col("cost").mean(),
        coupon_cost=pl.col("coupon_cost").mean(),
        expected_gain=(pl.col("uplift") * pl.col("value")).sum(),
        true_gain=pl.col("true_gain").sum(),
        expected_cost=pl.col("expected_cost").sum(),
        true_cost=pl.col("true_cost").sum(),
        measured_share=pl.col("uplift_measured").cast(pl.Float64).mean(),
    ).row(0, named=True)
    return {k: float(v) for k, v in row.items()}


def _by_type(nbo: pl.DataFrame, oracle: pl.DataFrame) -> pl.DataFrame:
    """Decisions and true profit per response type, nbo's and the oracle's side by side."""

    def count(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by("response_type").agg(
            pl.len().alias(f"{name}_decisions"), pl.col("true_incremental").sum().alias(name)
        )

    return (
        count(nbo, NBO)
        .join(count(oracle, ORACLE), on="response_type", how="full", coalesce=True)
        .fill_null(0)
        .sort("response_type")
    )


def run_seed(args: argparse.Namespace, seed: int, work: Path, console: Console) -> SeedResult:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    root = work / f"club-s{seed}"
    with console.status(f"seed {seed}: generating {args.members:,} members"):
        generate_club(
            root, members=args.members, products=args.products, weeks=args.weeks, seed=seed,
            counterfactuals=True, control_share=args.control_share, overwrite=True,
        )  # fmt: skip
    seconds["generate"] = time.perf_counter() - started
    club = ClubData(root)
    truth = read_truth(root)
    margin = float(json.loads((truth_dir(root) / "manifest.json").read_text())["margin_share"])
    campaigns = club.campaigns.sort("start_date", "campaign_id").collect()
    if campaigns.height <= args.campaigns:
        raise SystemExit(f"{campaigns.height} campaigns: too few to train before the last ones")
    chosen = campaigns.tail(args.campaigns)
    as_of = datetime.combine(chosen["start_date"][0], datetime.min.time())
    with console.status(f"seed {seed}: training as of {as_of:%Y-%m-%d}"):
        models, timing = _fit(club, as_of)
    seconds["train"] = time.perf_counter() - started - seconds["generate"]
    policy = _policy()
    variant = _truth_policy(policy, margin)
    contact_cost = policy.economics.contact_cost.get(CHANNEL, 0.0)
    picks: dict[str, list[pl.DataFrame]] = {m: [] for m in (*METHODS, *DIAGNOSTICS)}
    for k, campaign in enumerate(chosen.iter_rows(named=True)):
        cid = campaign["campaign_id"]
        with console.status(f"seed {seed}: deciding {cid} on {campaign['start_date']}"):
            decided, eligible = _decide(club, models, timing, policy, campaign)
            alternative, _ = _decide(club, models, timing, variant, campaign)
        scored = true_incremental(eligible, truth, contact_cost=contact_cost)
        stray = decided.join(eligible, on=["member_id", "offer_id"], how="anti")
        if stray.height:
            raise SystemExit(f"{cid}: {stray.height} decisions are not among the eligible rows")
        nbo = true_incremental(decided, truth, contact_cost=contact_cost)
        counts = offers_per_list(nbo)
        picks[NBO].append(nbo)
        picks[REDEEM].append(top_per_list(scored, counts, "p_redeem"))
        picks[BUY].append(top_per_list(scored, counts, "p_buy"))
        picks[RANDOM].append(random_per_list(scored, counts, seed=1000 * seed + k))
        picks[ORACLE].append(top_per_list(scored, counts, "true_incremental"))
        picks[ORACLE_FREE].append(positive_per_list(scored, policy.slots))
        picks[NO_LIST_RULES].append(top_per_list(scored, counts, "incremental_value"))
        variant_picks = true_incremental(alternative, truth, contact_cost=contact_cost)
        variant_counts = offers_per_list(variant_picks)
        picks[TRUTH_ECONOMICS].append(variant_picks)
        picks[ECONOMICS_ORACLE].append(top_per_list(scored, variant_counts, "true_incremental"))
        picks[ECONOMICS_REDEEM].append(top_per_list(scored, variant_counts, "p_redeem"))
        console.print(
            f"seed {seed} {cid} ({campaign['start_date']}): {eligible.height:,} eligible pairs, "
            f"{decided.height:,} decisions for {counts.height:,} members"
        )
    frames = {m: pl.concat(rows, how="diagonal_relaxed") for m, rows in picks.items()}
    summary = method_summary(frames)
    counted = summary.filter(pl.col("method").is_in([REDEEM, BUY, RANDOM, ORACLE, NO_LIST_RULES]))
    nbo_decisions = summary.filter(pl.col("method") == NBO)["decisions"][0]
    assert (counted["decisions"] == nbo_decisions).all(), "every method takes nbo's counts"
    variant_rows = summary.filter(
        pl.col("method").is_in([TRUTH_ECONOMICS, ECONOMICS_ORACLE, ECONOMICS_REDEEM])
    )
    assert variant_rows["decisions"].n_unique() == 1, "the variant's rankings take its counts"
    return SeedResult(
        seed=seed,
        summary=summary,
        targets=targets(summary),
        economics=targets(
            variant_rows.with_columns(
                pl.col("method").replace(
                    {TRUTH_ECONOMICS: NBO, ECONOMICS_ORACLE: ORACLE, ECONOMICS_REDEEM: REDEEM}
                )
            )
        ),
        measured=f"measured={models.uplift.measured_}: {models.uplift.reason_}",
        diagnosis={m: _diagnosis(frames[m]) for m in (NBO, TRUTH_ECONOMICS)},
        by_type=_by_type(frames[NBO], frames[ORACLE]),
        seconds=seconds
        | {"decide and score": time.perf_counter() - started - sum(seconds.values())},
    )


def _seed_table(result: SeedResult) -> Table:
    t = result.targets
    table = Table(title=f"seed {result.seed}: true incremental profit of each method's decisions")
    for column in ("method", "decisions", "members", "true incr.", "true gain", "true cost",
                   "redemptions", "expected", "expected / true", "× oracle"):  # fmt: skip
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in result.summary.iter_rows(named=True):
        ratio = row["expected"] / row["true"] if row["true"] else float("nan")
        table.add_row(
            row["method"], f"{row['decisions']:,}", f"{row['lists']:,}", f"{row['true']:,.1f}",
            f"{row['true_gain']:,.1f}", f"{row['true_cost']:,.1f}", f"{row['redemptions']:,.0f}",
            f"{row['expected']:,.1f}", f"{ratio:.2f}",
            f"{row['true'] / t.oracle:.2f}" if t.oracle > 0 else "n/a",
        )  # fmt: skip
    return table


def _interval(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return "n/a"
    mean = sum(finite) / len(finite)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    half = float(stats.t.ppf(0.975, len(finite) - 1)) * sd / math.sqrt(len(finite))
    return f"{mean - half:.2f} … {mean + half:.2f}"


def _summary_tables(results: list[SeedResult]) -> tuple[Table, Table]:
    seeds = [str(r.seed) for r in results]
    profit = Table(title="true incremental profit per seed")
    for column in ("method", *(f"seed {s}" for s in seeds), "mean", "min"):
        profit.add_column(column, justify="left" if column == "method" else "right")
    for method in (*METHODS, *DIAGNOSTICS):
        values = [float(r.summary.filter(pl.col("method") == method)["true"][0]) for r in results]
        profit.add_row(
            method, *(f"{v:,.1f}" for v in values), f"{sum(values) / len(values):,.1f}",
            f"{min(values):,.1f}",
        )  # fmt: skip
    ratios = Table(title="targets per seed (mean ± 95 % t-interval over seeds)")
    for column in ("figure", "target", *(f"seed {s}" for s in seeds), "mean", "95 % interval",
                   "min", "met on"):  # fmt: skip
        ratios.add_column(column, justify="left" if column in ("figure", "target") else "right")
    rows = [
        (f"{name}{label}", target, [figure(of(r)) for r in results], key, of)
        for label, of in (("", attrgetter("targets")),
                          (", truth's economics", attrgetter("economics")))
        for name, target, figure, key in (
            ("nbo / oracle", "≥ 0.6, nbo > 0", attrgetter("vs_oracle"), "profit ≥ 0.6 × oracle"),
            ("(nbo − p_redeem) / |p_redeem|", "≥ 0.5", attrgetter("vs_redeem"),
             "beats p_redeem by ≥ 0.5 × |p_redeem|"),
            ("expected / true", "0.7 … 1.3", attrgetter("expected_over_true"),
             "expected within ±30 % of true"),
        )
    ]  # fmt: skip
    for name, target, values, key, of in rows:
        met = sum(of(r).met()[key] for r in results)
        ratios.add_row(
            name, target, *(f"{v:.2f}" for v in values), f"{sum(values) / len(values):.2f}",
            _interval(values), f"{min(values):.2f}", f"{met} / {len(results)}",
        )  # fmt: skip
    return profit, ratios


def _print_diagnosis(console: Console, result: SeedResult) -> None:
    share = result.diagnosis[NBO]["measured_share"]
    console.print(f"uplift: {result.measured}; {share:.0%} of nbo's decisions measured")
    for method, d in result.diagnosis.items():
        console.print(
            f"{method}: estimates vs the truth, means over its decisions: uplift "
            f"{d['uplift']:.4f} vs {d['true_uplift']:.4f}, value {d['value']:.3f} vs "
            f"{d['true_value']:.3f}, p_redeem {d['p_redeem']:.4f} vs {d['p_redeem_treated']:.4f}, "
            f"cost per redemption {d['cost']:.3f} vs coupon_cost {d['coupon_cost']:.3f}; sums: "
            f"gain {d['expected_gain']:,.1f} vs {d['true_gain']:,.1f}, cost "
            f"{d['expected_cost']:,.1f} vs {d['true_cost']:,.1f}"
        )
    console.print(
        "by response type, decisions (true profit) nbo | oracle: "
        + "; ".join(
            f"{r['response_type']} {r['nbo_decisions']:,} ({r[NBO]:,.1f}) | "
            f"{r['oracle_decisions']:,} ({r[ORACLE]:,.1f})"
            for r in result.by_type.iter_rows(named=True)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--control-share", type=float, default=0.2)
    parser.add_argument("--campaigns", type=int, default=3, help="decide the last N campaigns")
    parser.add_argument("--work", type=Path, default=None, help="where the clubs go (temp dir)")
    args = parser.parse_args()

    console = Console()
    if not console.is_terminal:  # a log file: wide enough for the tables
        console = Console(width=150)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nbo-incremental-", dir=args.work))
    console.print(
        f"{platform.node()}, {os.cpu_count()} CPUs, {datetime.now():%Y-%m-%d %H:%M}, load "
        f"{os.getloadavg()[0]:.2f}; nbo from {Path(nbo.__file__).parent}"
    )
    started = time.perf_counter()
    results = []
    try:
        for seed in args.seeds:
            result = run_seed(args, seed, work, console)
            results.append(result)
            console.print(_seed_table(result))
            _print_diagnosis(console, result)
            console.print(
                "; ".join(
                    f"targets{label}: "
                    + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in t.met().items())
                    for label, t in (("", result.targets), (", truth's economics",
                                                             result.economics))
                )
                + " ("
                + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
                + ")"
            )  # fmt: skip
            shutil.rmtree(work / f"club-s{seed}", ignore_errors=True)
            shutil.rmtree(truth_dir(work / f"club-s{seed}"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for table in _summary_tables(results):
        console.print(table)
    console.print(
        f"{args.members:,} members, {args.products:,} products, {args.weeks} weeks, control share "
        f"{args.control_share}, last {args.campaigns} campaigns; {_policy().slots} slots, channel "
        f"{CHANNEL} (contact cost {_policy().economics.contact_cost.get(CHANNEL, 0.0)}); "
        f"{time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
