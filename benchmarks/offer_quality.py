"""Offer response quality on a real club: the model against simple baselines, in one run.

Fits :class:`~nbo.models.response.OfferResponse` on ``History.at(club, as_of)``, scores every
pair of the campaigns starting on/after ``as_of`` (:func:`~nbo.models.response.offer_pairs`) and
prints offer AUC, hit-rate@3, log loss and calibration beside baselines that use one feature
each (or none):

    .venv/bin/python benchmarks/offer_quality.py /tmp/cj --as-of 2017-09-04
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from nbo.data.io import ClubData
from nbo.evaluation.metrics import auc, hit_rate_at_k
from nbo.features.history import History
from nbo.features.offers import response_features
from nbo.models.response import OfferResponse, offer_pairs

Baseline = Callable[[pl.DataFrame], pl.Expr]

# Each baseline ranks by one point-in-time feature (ties broken by a tiny random jitter, so
# hit-rate@3 is not flattered or punished by the input order).
BASELINES: dict[str, str] = {
    "past redemptions (member)": "m_redemptions",
    "past redemption rate (member)": "m_redeem_rate",
    "coupon lines on receipts (member)": "m_coupon_lines",
    "past purchases of offer's products": "mo_baskets",
    "coupon use on offer's products": "mo_coupon_lines",
}


def _scores(labels: np.ndarray, score: np.ndarray, pairs: pl.DataFrame) -> dict[str, float]:
    scored = pairs.select("member_id", "label").with_columns(score=pl.Series(score))
    return {
        "auc": auc(labels, score),
        "hit@3": hit_rate_at_k(scored, k=3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("club", help="dataset directory, e.g. /tmp/cj")
    parser.add_argument("--as-of", default="2017-09-04")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    club = ClubData(args.club)
    history = History.at(club, args.as_of)
    pairs = offer_pairs(club, args.as_of)
    labels = pairs["label"].to_numpy()

    started = time.perf_counter()
    model = OfferResponse(random_state=args.seed).fit(history)
    fitted = time.perf_counter()
    predicted = model.predict_proba(history, pairs)
    done = time.perf_counter()
    p_redeem = predicted["p_redeem"].to_numpy()

    features = response_features(history, pairs.lazy()).collect()
    jitter = np.random.default_rng(args.seed).uniform(0.0, 1e-9, pairs.height)
    rows: list[tuple[str, dict[str, float]]] = [
        ("OfferResponse", _scores(labels, p_redeem, pairs)),
    ]
    for name, column in BASELINES.items():
        rows.append((name, _scores(labels, features[column].to_numpy() + jitter, pairs)))
    rows.append(("random", _scores(labels, jitter, pairs)))

    console = Console()
    table = Table(
        title=f"Offer response on {club.root} as of {args.as_of}: "
        f"{pairs.height:,} pairs, {int(labels.sum()):,} redeemed, "
        f"{pairs['campaign_id'].n_unique()} campaigns",
        title_justify="left",
    )
    table.add_column("scorer")
    table.add_column("offer AUC", justify="right")
    table.add_column("hit-rate@3", justify="right")
    for name, metrics in rows:
        table.add_row(name, f"{metrics['auc']:.4f}", f"{metrics['hit@3']:.4f}")
    console.print(table)

    eps = 1e-12
    log_loss = -float(
        np.mean(labels * np.log(p_redeem + eps) + (1 - labels) * np.log(1 - p_redeem + eps))
    )
    per_campaign = (
        pairs.with_columns(p_redeem=predicted["p_redeem"])
        .group_by("campaign_id")
        .agg(
            pl.len().alias("pairs"),
            pl.col("label").sum().alias("redeemed"),
            pl.col("p_redeem").sum().alias("expected"),
        )
        .sort("campaign_id")
    )
    console.print(
        f"calibration: mean p_redeem {p_redeem.mean():.5f} vs redeem rate {labels.mean():.5f}; "
        f"log loss {log_loss:.5f}"
    )
    console.print(per_campaign)
    console.print(
        f"fit {fitted - started:.2f} s ({model.n_train_pairs_:,} pairs, "
        f"{model.n_train_positives_:,} positives, campaigns {', '.join(model.train_campaigns_)}); "
        f"predict {done - fitted:.2f} s"
    )


if __name__ == "__main__":
    main()
