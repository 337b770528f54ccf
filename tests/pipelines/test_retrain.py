"""nbo retrain and nbo promote, like for like (issue 16, items 1 and 2).

Fast tests on the synthetic club (receipts to 2024-05-18: trained on everything means as of
2024-05-19, the 14-day window starts 2024-05-05) with a cheap recipe; a stub HTTP server
stands in for the offer service's reload route. The slow test is the issue's scenario on
Complete Journey.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nbo.cli import app
from nbo.data.completejourney import import_completejourney
from nbo.pipelines.retrain import ReloadError, reload_service
from nbo.plans import read_manifest
from nbo.tracking.gate import lfl_key
from nbo.tracking.registry import MODEL_NAME

runner = CliRunner()
CHEAP = {
    "affinity": {"n_rankers": 1, "train_cutoffs": 1, "max_iter": 30},
    "timing": {"n_windows": 8, "max_iter": 50},
    "evaluation": {"windows_days": [14]},
}
# every member below min_baskets gets the cold-start popularity list: a recipe that is worse
WORSE = CHEAP | {"affinity": CHEAP["affinity"] | {"min_baskets": 100_000}}


class _Service(BaseHTTPRequestHandler):
    """The reload route of a service: answers ``status`` and records each request."""

    status = 200
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        type(self).requests.append((self.path, self.headers.get("X-API-Key")))
        body = (
            {"models": {"champion": "models:/nbo/3"}}
            if self.status == 200
            else {"detail": "the service is starting"}
        )
        payload = json.dumps(body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def service() -> Iterator[tuple[str, type[_Service]]]:
    handler = type("Handler", (_Service,), {"requests": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("NBO_CHALLENGER_URI", raising=False)
    monkeypatch.setenv("NBO_DATABASE_URL", f"sqlite:///{tmp_path / 'history.db'}")
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _yaml(path: Path, config: dict[str, Any]) -> str:
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _run_of(version: str) -> Any:
    client = MlflowClient()
    return client.get_run(client.get_model_version(MODEL_NAME, version).run_id).data


def _champion() -> str:
    return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion").version)


def test_retrain_promotes_an_equal_recipe_and_keeps_the_champion_over_a_worse_one(
    synth_club: Path,
    store: Path,
    service: tuple[str, type[_Service]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = service
    cheap, worse = _yaml(store / "cheap.yaml", CHEAP), _yaml(store / "worse.yaml", WORSE)
    monkeypatch.setenv("NBO_ADMIN_KEY", "admin-key")

    # the first champion; the service cannot be told: promoted all the same, exit 4
    handler.status = 503
    first = _run("retrain", "--data", str(synth_club), "--config", cheap, "--service-url", url)
    assert first.exit_code == 4, first.output
    assert "no champion yet" in first.output and "champion is now version 1" in first.output
    assert "reload failed" in first.output and "the service is starting" in first.output
    assert _champion() == "1"
    assert _run_of("1").params["as_of"] == "2024-05-19"

    # a worse recipe: the champion (trained on everything, so it saw the window) is refit
    # with its own recipe as of the window's start, and the candidate refused on those numbers
    handler.status = 200
    kept = _run("retrain", "--data", str(synth_club), "--config", worse, "--service-url", url)
    assert kept.exit_code == 3, kept.output
    assert "not promoted; champion stays 1" in kept.output
    assert handler.requests == [("/v1/admin/reload", "admin-key")]  # not told again
    refused = _run_of("2")
    assert refused.tags["lfl.champion_version"] == "1"
    assert refused.tags["lfl.cut_14d"] == "2024-05-05"
    assert refused.tags["lfl.champion_model_14d"] == "its recipe refit as of 2024-05-05"
    assert refused.tags["promotion.verdict"] == "kept champion 1"
    candidate = {m: refused.metrics[lfl_key(14, "candidate", m)] for m in ("ndcg_at_10", "members")}
    champion = {m: refused.metrics[lfl_key(14, "champion", m)] for m in ("ndcg_at_10", "members")}
    assert candidate["members"] == champion["members"] > 0  # the same members
    assert candidate["ndcg_at_10"] < champion["ndcg_at_10"]
    assert f"{candidate['ndcg_at_10']:.4f}" in kept.output  # printed as logged
    assert _champion() == "1"

    # the champion's recipe again, on the same data: the same numbers, promoted; plan, reload
    plans = store / "plans"
    again = _run(
        "retrain", "--data", str(synth_club), "--config", cheap,
        "--service-url", url, "--plans", str(plans),
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "champion is now version 3" in again.output
    assert "service reloaded: champion models:/nbo/3" in again.output
    promoted = _run_of("3")
    for metric in ("recall_at_10", "ndcg_at_10", "visit_mae", "members"):
        assert promoted.metrics[lfl_key(14, "candidate", metric)] == pytest.approx(
            promoted.metrics[lfl_key(14, "champion", metric)]
        )
    # ... and the refit champion of the refused run was this very recipe on these members
    assert promoted.metrics[lfl_key(14, "candidate", "ndcg_at_10")] == pytest.approx(
        champion["ndcg_at_10"]
    )
    assert promoted.tags["promotion.verdict"] == "promoted"
    manifest = read_manifest(plans, date(2024, 5, 19))
    assert manifest is not None and "models:/nbo/3" in json.dumps(manifest)
    assert handler.requests[-1] == ("/v1/admin/reload", "admin-key")


def test_promote_compares_like_for_like_on_the_data_the_candidate_trained_on(
    synth_club: Path, store: Path
) -> None:
    cheap = _yaml(store / "cheap.yaml", CHEAP)
    for as_of in ("2024-04-01", "2024-05-19"):
        trained = _run("train", "--data", str(synth_club), "--as-of", as_of, "--config", cheap)
        assert trained.exit_code == 0, trained.output
        if as_of == "2024-04-01":
            assert _run("promote").exit_code == 0
    promoted = _run("promote")
    assert promoted.exit_code in (0, 3), promoted.output
    run = _run_of("2")
    assert run.tags["lfl.champion_model_14d"] == "as deployed (trained as of 2024-04-01)"
    assert "14d" in promoted.output and "ndcg_at_10" in promoted.output
    verdict = "promoted" if promoted.exit_code == 0 else "kept champion 1"
    assert run.tags["promotion.verdict"] == verdict


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--service-url", "http://127.0.0.1:9"], {}, "needs an admin API key in $NBO_ADMIN_KEY"),
        (["--config", "{bad}"], {}, "affinity.n_rankers"),
        (["--policy", "{missing}"], {}, "no such policy"),
    ],
)
def test_bad_input_exits_2_before_training(
    synth_club: Path,
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.delenv("NBO_ADMIN_KEY", raising=False)
    bad = _yaml(store / "bad.yaml", {"affinity": {"n_rankers": "five"}})
    args = [a.format(bad=bad, missing=store / "missing.yaml") for a in args]
    result = _run("retrain", "--data", str(synth_club), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert not (store / "mlflow.db").exists() or not MlflowClient().search_registered_models()


def test_reload_errors_name_the_service(service: tuple[str, type[_Service]]) -> None:
    url, handler = service
    assert reload_service(url, "k") == {"champion": "models:/nbo/3"}
    handler.status = 403
    with pytest.raises(ReloadError, match="answered 403: the service is starting"):
        reload_service(url + "/v1/admin/reload", "k")
    with pytest.raises(ReloadError, match="cannot reach the service"):
        reload_service("http://127.0.0.1:9", "k", timeout=2)


@pytest.mark.slow
def test_complete_journey_retrained_on_everything_is_compared_like_for_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's scenario: the demo's champion (as of 2017-09-04), then a model trained on
    all the data (receipts end 2018-01-01); it is compared on the last 14 and 28 days with the
    champion as deployed, and promoted."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = tmp_path / "completejourney"
    import_completejourney(data)
    trained = _run("train", "--data", str(data), "--as-of", "2017-09-04")
    assert trained.exit_code == 0, trained.output
    assert _run("promote").exit_code == 0
    # measured 2026-12: the fresh recipe is within 1.5 % of the champion on every metric and
    # window, slightly worse on most (0.3265 vs 0.3293 NDCG@10 on 14 days): no better by this
    # gate, so a nightly job on this club runs with a small tolerance
    retrained = _run("retrain", "--data", str(data), "--tolerance", "0.02")
    assert retrained.exit_code == 0, retrained.output
    assert "champion is now version 2" in retrained.output
    run = _run_of("2")
    assert run.params["as_of"] == "2018-01-02"
    assert run.tags["lfl.cut_14d"] == "2017-12-19" and run.tags["lfl.cut_28d"] == "2017-12-05"
    for days in (14, 28):
        assert run.tags[f"lfl.champion_model_{days}d"] == "as deployed (trained as of 2017-09-04)"
        for side in ("candidate", "champion"):
            assert run.metrics[lfl_key(days, side, "members")] > 500
            assert 0 < run.metrics[lfl_key(days, side, "offer_auc")] < 1  # campaigns 21-23 | 23
        assert (
            run.metrics[lfl_key(days, "candidate", "members")]
            == run.metrics[lfl_key(days, "champion", "members")]
        )
    assert run.tags["promotion.verdict"] == "promoted"
    mlflow.set_tracking_uri(None)
