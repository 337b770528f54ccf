"""An offer service on the synthetic club's champion, in-process (TestClient), per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nbo.serving.app import create_app
from nbo.serving.process import ServeProcess, ServeProcessError
from nbo.settings import Settings

KEYS = {"reader-key": "reader", "writer-key": "writer", "admin-key": "admin"}
READER = {"X-API-Key": "reader-key"}
WRITER = {"X-API-Key": "writer-key"}
ADMIN = {"X-API-Key": "admin-key"}
TODAY = date(2024, 4, 1)  # the registry fixture's model is trained as of this day
READY_TIMEOUT_S = 120.0  # a real server loading the registry's model, on a busy 2-core machine


def wait_ready(server: ServeProcess) -> None:
    """A real server's readiness, or the test's failure with the server's log."""
    try:
        server.wait_ready(READY_TIMEOUT_S)
    except ServeProcessError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def make_client(
    registry: str, synth_club: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TestClient]]:
    """Start a service with settings overridden as given; every one is stopped at the end."""
    opened: list[TestClient] = []
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", registry)

    def make(**overrides: Any) -> TestClient:
        folder = tmp_path_factory.mktemp("serving")
        values: dict[str, Any] = {"api_keys": KEYS, "data_dir": synth_club, "today": TODAY,
                                  "holdout_share": 0.0,
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
