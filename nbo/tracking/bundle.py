"""The model bundle: every fitted model of one training run, saved and loaded as one artifact."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.errors import NboError
from nbo.features.history import History
from nbo.features.offers import FEATURES as RESPONSE_FEATURES
from nbo.models.affinity import FEATURES as AFFINITY_FEATURES
from nbo.models.affinity import ProductAffinity
from nbo.models.purchase import WINDOW as PURCHASE_WINDOW
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.models.visit_counts import MEAN_COLUMNS, MEDIAN_COLUMNS

__all__ = ["BUNDLE_FILE", "Bundle", "BundleError", "feature_lists"]

BUNDLE_FILE = "bundle.joblib"


class BundleError(NboError):
    """A bundle file this code cannot use (not a bundle, or made by code with other features)."""


def feature_lists() -> dict[str, list[str]]:
    """The input columns each model of this code reads, in order; a bundle records its own."""
    return {
        "affinity": list(AFFINITY_FEATURES),
        "purchase": [*RESPONSE_FEATURES, PURCHASE_WINDOW],
        "response": list(RESPONSE_FEATURES),
        "uplift": list(RESPONSE_FEATURES),
        "visit_mean": list(MEAN_COLUMNS),
        "visit_median": list(MEDIAN_COLUMNS),
    }


@dataclass
class Bundle:
    """What ``nbo train`` produces: the models, trained as of ``as_of``, and their story.

    ``purchase`` gives p_buy (buys the offer's products anyway), ``response`` p_redeem,
    ``uplift`` what an offer changes (measured, or the documented assumption).
    """

    as_of: datetime
    affinity: ProductAffinity
    purchase: OfferPurchase
    response: OfferResponse
    timing: VisitTiming
    uplift: OfferUplift
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    version: str = "local"
    features: dict[str, list[str]] = field(default_factory=feature_lists)
    reference: dict[str, Any] | None = None
    """Training distribution of each score, for drift monitoring (``nbo monitor``): score name
    -> ``{"edges", "shares", "count"}`` (:class:`nbo.evaluation.monitor.Reference`). None for a
    bundle trained before it was recorded, or without holdout offer pairs to take it from."""

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``bundle.joblib`` into ``directory`` atomically; returns its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".bundle-", dir=out)
        os.close(fd)
        try:
            joblib.dump(self, tmp, compress=3)
            os.replace(tmp, out / BUNDLE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out / BUNDLE_FILE

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Bundle:
        path = Path(path)
        if path.is_dir():
            path = path / BUNDLE_FILE
        retrain = "train a new one with this version (nbo train --data DIR --as-of DATE)"
        try:
            bundle = joblib.load(path)
        except Exception as exc:  # unpickling a foreign file can raise almost anything
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise BundleError(
                f"{path}: not a bundle this nbo can read ({message}); {retrain}"
            ) from None
        if not isinstance(bundle, Bundle):
            raise BundleError(f"{path} does not hold an nbo Bundle")
        recorded = bundle.__dict__.get("features")
        if recorded is None:
            raise BundleError(
                f"{path} was trained by an nbo version that did not record its models' input "
                f"columns, so this one cannot tell whether it reads them right; {retrain}"
            )
        changed = [name for name, columns in feature_lists().items()
                   if recorded.get(name) != columns]  # fmt: skip
        if changed:
            raise BundleError(
                f"{path} was trained by nbo code whose models read other features than this "
                f"version's ({', '.join(changed)}); {retrain}"
            )
        return bundle

    # -- predictions ---------------------------------------------------------------------------
    def recommend(
        self, club: ClubData, at: datetime, member_ids: np.ndarray | None = None, k: int = 10
    ) -> pl.DataFrame:
        """member_id, rank, product_id, score, reason, cold_start."""
        return self.affinity.recommend(History.at(club, at), member_ids, k=k)

    def score_offers(self, club: ClubData, pairs: pl.DataFrame) -> pl.DataFrame:
        """member_id, offer_id, at → p_redeem, each pair scored as of its own ``at``."""
        scored = []
        for (at,), group in pairs.group_by("at", maintain_order=True):
            history = History.at(club, at)
            result = self.response.predict_proba(history, group.select("member_id", "offer_id"))
            scored.append(result.with_columns(at=pl.lit(at, dtype=pairs.schema["at"])))
        if not scored:
            return pairs.with_columns(p_redeem=pl.lit(None, dtype=pl.Float64))
        return pl.concat(scored).select("member_id", "offer_id", "at", "p_redeem")

    def forecast_visits(self, club: ClubData, at: datetime, horizon_days: int = 28) -> pl.DataFrame:
        return self.timing.predict(History.at(club, at), horizon_days=horizon_days)
