"""The data scientist's loop as one job: train on everything, compare like for like, promote.

``nbo retrain --data DIR [--config train.yaml]`` runs :func:`retrain` (then tells a running
service to reload with :func:`reload_service`); ``nbo promote`` runs :func:`promote_candidate`.
See docs/retraining.md for scheduling and exit codes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nbo.data.io import ClubData
from nbo.errors import NboError
from nbo.features.history import as_datetime
from nbo.pipelines.compare import Contender, data_end, like_for_like
from nbo.pipelines.config import TrainConfig, TrainConfigError, load_config
from nbo.pipelines.train import CONFIG_ARTIFACT, TrainResult, train
from nbo.tracking.bundle import Bundle, BundleError
from nbo.tracking.promotion import (
    Promotion,
    WindowNumbers,
    comparable_windows,
    current_versions,
    promote,
    record_comparison,
    run_of,
)
from nbo.tracking.registry import MODEL_NAME, load_bundle

__all__ = [
    "ReloadError",
    "RetrainResult",
    "promote_candidate",
    "reload_service",
    "retrain",
    "run_config",
]

OnStage = Callable[[str], None]
RELOAD_PATH = "/v1/admin/reload"


class ReloadError(NboError):
    """The offer service could not be told to reload (unreachable, refused or failed)."""


@dataclass
class RetrainResult:
    """What :func:`retrain` (or :func:`promote_candidate`) did, with the numbers behind it."""

    promotion: Promotion
    windows: list[WindowNumbers] = field(default_factory=list)
    trained: TrainResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_config(run_id: str) -> TrainConfig:
    """The training configuration a run logged (its ``train.yaml``); the defaults without one."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = MlflowClient().download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return TrainConfig()  # trained before configurations were logged: the defaults
        try:
            return load_config(path)
        except TrainConfigError as exc:  # written by another version of nbo
            problem = str(exc).removeprefix(f"{path}: ")
            raise TrainConfigError(f"run {run_id}'s {CONFIG_ARTIFACT}: {problem}") from None


def _deployed(version: str) -> Bundle | None:
    """The champion's bundle; None when this code cannot score it (its features differ), so
    its recipe is refit instead, as this code would serve it."""
    try:
        return load_bundle(f"models:/{MODEL_NAME}/{version}")
    except BundleError:
        return None


def promote_candidate(
    data: str | Path | None = None,
    *,
    tolerance: float = 0.0,
    force: bool = False,
    on_stage: OnStage | None = None,
) -> RetrainResult:
    """Compare the candidate with the champion like for like (unless its run already holds
    numbers against this champion), log them to the candidate's run, then run the gate.

    ``data`` is the club to evaluate on; by default the directory the candidate was trained on.
    """
    client = MlflowClient()
    candidate, champion = current_versions(client)
    windows: list[WindowNumbers] = []
    seconds: dict[str, float] = {}
    needed = (
        champion is not None
        and champion.version != candidate.version
        and not force
        and not comparable_windows(candidate, champion, client)
    )
    if needed and champion is not None:
        start = time.perf_counter()
        params = client.get_run(run_of(candidate)).data.params
        root = data if data is not None else params.get("data")
        if root is None:
            raise NboError(
                f"candidate version {candidate.version} records no data directory; "
                "give the club's data with --data DIR"
            )
        club = ClubData(root)
        end = as_datetime(candidate.tags.get("as_of") or params["as_of"])
        windows = like_for_like(
            club,
            Contender(run_config(run_of(candidate))),
            Contender(run_config(run_of(champion)), _deployed(str(champion.version))),
            end=end,
            on_stage=on_stage,
        )
        record_comparison(run_of(candidate), str(champion.version), windows)
        seconds["like-for-like comparison"] = time.perf_counter() - start
    if on_stage:
        on_stage("promotion gate")
    return RetrainResult(promote(force=force, tolerance=tolerance), windows, seconds=seconds)


def retrain(
    club: ClubData,
    config: TrainConfig | None = None,
    *,
    experiment: str = "nbo",
    tolerance: float = 0.0,
    on_stage: OnStage | None = None,
    exposure: pl.DataFrame | None = None,
) -> RetrainResult:
    """Train on every receipt (as of the day after the last one), register the bundle as the
    candidate, compare it like for like with the champion and promote it if the gate passes.

    ``exposure``: the service's randomized exposure for the uplift model, as in
    :func:`~nbo.pipelines.train.train`.
    """
    start = time.perf_counter()
    trained = train(
        club, data_end(club), config=config, experiment=experiment, on_stage=on_stage,
        exposure=exposure,
    )  # fmt: skip
    seconds = {"training on everything": time.perf_counter() - start}
    outcome = promote_candidate(club.root, tolerance=tolerance, on_stage=on_stage)
    outcome.trained = trained
    outcome.seconds = seconds | outcome.seconds
    return outcome


def reload_service(url: str, key: str, *, timeout: float = 30.0) -> dict[str, str]:
    """``POST {url}/v1/admin/reload`` with an admin key; the models the service now serves.

    Raises :class:`ReloadError` naming the URL and the service's answer.
    """
    target = url.rstrip("/")
    if not target.endswith(RELOAD_PATH):
        target += RELOAD_PATH
    try:
        response = httpx.post(target, headers={"X-API-Key": key}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ReloadError(f"{target}: cannot reach the service ({exc})") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ReloadError(f"{target}: the service answered {response.status_code}: {detail}")
    models: dict[str, str] = response.json().get("models", {})
    return models
