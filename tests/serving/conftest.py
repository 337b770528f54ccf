"""An offer service on the plan of the synthetic club's champion, in-process (TestClient)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nbo.cli import app as cli
from nbo.serving.app import create_app
from nbo.serving.process import ServeProcess, ServeProcessError
from nbo.settings import Settings

KEYS = {"reader-key": "reader", "writer-key": "writer", "admin-key": "admin"}
READER = {"X-API-Key": "reader-key"}
WRITER = {"X-API-Key": "writer-key"}
ADMIN = {"X-API-Key": "admin-key"}
TODAY = date(2024, 4, 1)  # the registry fixture's model is trained as of this day
READY_TIMEOUT_S = 120.0  # a real server starting, on a busy 2-core machine
SHARDS = 3  # more than one, so that every serving test reads a sharded plan


def make_plan(registry: str, club: Path, out: Path, *args: str, day: date = TODAY) -> Path:
    """``nbo plan`` of the registry's champion on ``club`` for ``day`` into ``out``."""
    database = f"sqlite:///{out.parent / f'{out.name}-plan.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        result = CliRunner().invoke(cli, [
            "plan", "--data", str(club), "--day", f"{day:%Y-%m-%d}", "--out", str(out),
            "--shards", str(SHARDS), "--database-url", database, *args,
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def plan_dir(registry: str, synth_club: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The champion's plan for TODAY on the synthetic club (made once per session)."""
    return make_plan(registry, synth_club, tmp_path_factory.mktemp("plans") / "plans")


def planned_members(client: TestClient) -> list[int]:
    """The members with rows in today's email plan, in order."""
    plan = client.app.state.service.plans.cached(TODAY)  # type: ignore[attr-defined]
    shards = plan.arms["champion"].plans["email"]
    return [int(m) for m in np.sort(np.concatenate([p.member_ids for p in shards]))]


def wait_ready(server: ServeProcess) -> None:
    """A real server's readiness, or the test's failure with the server's log."""
    try:
        server.wait_ready(READY_TIMEOUT_S)
    except ServeProcessError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def make_client(
    plan_dir: Path, synth_club: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TestClient]]:
    """Start a service with settings overridden as given; every one is stopped at the end."""
    opened: list[TestClient] = []
    patch = pytest.MonkeyPatch()
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # a plan-reading service has no registry

    def make(**overrides: Any) -> TestClient:
        folder = tmp_path_factory.mktemp("serving")
        values: dict[str, Any] = {"api_keys": KEYS, "plan_dir": plan_dir, "data_dir": synth_club,
                                  "today": TODAY, "holdout_share": 0.0,
                                  "database_url": f"sqlite:///{folder / 'nbo.db'}"}  # fmt: skip
        settings = Settings(**(values | overrides))
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
    patch.undo()


@pytest.fixture(scope="module")
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The default service: no holdout, no challenger."""
    return make_client()
