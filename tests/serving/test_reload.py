"""A replaced plan on a real server with two workers: no request fails, both workers follow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from mlflow import MlflowClient

from nbo.serving.process import ServeProcess, free_port
from tests.serving.conftest import make_plan, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KEYS = {"reload-reader": "reader", "reload-admin": "admin"}


def _connections_per_worker(server: ServeProcess, clients: int) -> list[int]:
    """Open ``clients`` keep-alive connections at once; how many each worker holds."""
    deadline = time.monotonic() + 120  # both workers started (readyz answers from the first)
    while server.log.read_text().count("nbo serve: ready") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    opened = [httpx.Client(base_url=server.base_url, timeout=30.0) for _ in range(clients)]
    try:
        threads = [threading.Thread(target=c.get, args=("/v1/healthz",)) for c in opened]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        workers = psutil.Process(server.process.pid).children(recursive=True)
        return sorted(
            sum(1 for c in w.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED
                and c.laddr and c.laddr.port == server.port)
            for w in workers if w.net_connections("tcp")
        )  # fmt: skip
    finally:
        for client in opened:
            client.close()


def test_reload_switches_every_worker_without_failing_a_request(
    registry: str, synth_club: Path, plan_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "mlflow.db"  # a copy: the session's registry keeps its champion
    shutil.copy(registry.removeprefix("sqlite:///"), store)
    uri = f"sqlite:///{store}"
    plans = tmp_path / "plans"
    shutil.copytree(plan_dir, plans, symlinks=True)
    env = {
        "PATH": str(Path(sys.executable).parent), "NBO_PLAN_DIR": str(plans),
        "NBO_DATA_DIR": str(synth_club), "NBO_TODAY": "2024-04-01",
        "NBO_DATABASE_URL": f"sqlite:///{tmp_path / 'nbo.db'}", "NBO_API_KEYS": json.dumps(KEYS),
        "NBO_HOLDOUT_SHARE": "0", "OPENBLAS_NUM_THREADS": "1",
        "NBO_PLAN_CHECK_SECONDS": "3600",  # only the reload makes a worker look
    }  # fmt: skip
    server = ServeProcess(env, tmp_path, args=("--workers", "2"))
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30.0,
                          headers={"X-API-Key": "reload-reader"}) as http:  # fmt: skip
            member = 0
            while not stop.is_set():
                member = (member + 7) % 300
                statuses.append(http.get(f"/v1/members/{member}/offers").status_code)

    try:
        server.start()
        wait_ready(server)
        # a burst of connections goes round the workers (nbo/serving/accept.py); uvicorn's own
        # accept loop gave one worker 13 of 16 (and 16 of 16) on this machine
        _connections_per_worker(server, 16)  # a fresh worker's first requests are slow ones
        held = _connections_per_worker(server, 16)
        assert sum(held) == 16 and len(held) == 2 and held[0] >= 4, held
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        first = client.get_model_version_by_alias("nbo", "champion")
        second = client.create_model_version("nbo", first.source, first.run_id)
        client.set_registered_model_alias("nbo", "champion", second.version)
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        make_plan(uri, synth_club, plans)  # the new champion's plan replaces today's
        time.sleep(1.0)
        with httpx.Client(base_url=server.base_url, timeout=120.0) as http:
            denied = http.post("/v1/admin/reload", headers={"X-API-Key": "reload-reader"})
            assert denied.status_code == 403
            reloaded = http.post("/v1/admin/reload", headers={"X-API-Key": "reload-admin"})
            assert reloaded.status_code == 200, reloaded.text
            wanted = f"models:/nbo/{second.version}"
            assert reloaded.json()["models"]["champion"] == wanted
            # each new connection lands on either worker: 20 answers in a row must agree
            deadline, agreeing = time.monotonic() + 90, 0
            while agreeing < 20 and time.monotonic() < deadline:
                with httpx.Client(base_url=server.base_url, timeout=10.0) as fresh:
                    served = fresh.get("/v1/readyz").json()["models"]["champion"]
                agreeing = agreeing + 1 if served == wanted else 0
                time.sleep(0.1)
            assert agreeing >= 20, "a worker still serves the old champion"
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
    finally:
        stop.set()
        server.kill()


def test_a_worker_that_cannot_start_stops_the_service_with_its_reason(
    plan_dir: Path, tmp_path: Path
) -> None:
    plans = tmp_path / "plans"  # passes the command's check (a manifest), not the worker's
    shutil.copytree(plan_dir, plans, symlinks=True)
    for columns in (plans / "2024-04-01").resolve().glob("champion/email/*/columns.arrow"):
        columns.write_bytes(b"not arrow")
    env = {
        "PATH": str(Path(sys.executable).parent), "NBO_PLAN_DIR": str(plans),
        "NBO_TODAY": "2024-04-01", "NBO_DATABASE_URL": f"sqlite:///{tmp_path / 'nbo.db'}",
        "NBO_API_KEYS": json.dumps(KEYS),
    }  # fmt: skip
    command = [str(Path(sys.executable).with_name("nbo")), "serve", "--port", str(free_port()),
               "--workers", "2"]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "the service did not start" in done.stderr and "unreadable" in done.stderr
