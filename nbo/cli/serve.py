"""Serving command: ``nbo serve`` (the offer API)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from nbo.cli.common import console, fails_cleanly
from nbo.errors import NboError

if TYPE_CHECKING:
    from nbo.settings import Settings

__all__ = ["register", "serve_cmd"]


def _settings() -> Settings:
    from pydantic_settings import SettingsError

    from nbo.settings import Settings

    try:
        return Settings()
    except SettingsError as exc:  # a value that does not parse, e.g. NBO_API_KEYS not JSON
        raise NboError(f"invalid settings — {exc}; NBO_API_KEYS is a JSON object") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"NBO_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise NboError(f"invalid settings — {problems}") from None


def prepare_serving(
    workers: int, plans: Path | None = None, data: Path | None = None
) -> Path | None:
    """Check the settings, policy and today's plan before any worker starts; migrate the
    database once."""
    from nbo.decisioning.policy import load_policy
    from nbo.history import InteractionStore
    from nbo.plans import plan_command, policy_digest, read_manifest
    from nbo.serving.plans import require_plan_dir
    from nbo.settings import FAILED_ENV, MIGRATED_ENV, require_api_keys

    if plans is not None:
        os.environ["NBO_PLAN_DIR"] = str(plans)
    if data is not None:
        os.environ["NBO_DATA_DIR"] = str(data)
    settings = _settings()
    require_api_keys(settings)
    require_plan_dir(settings)
    policy = load_policy(settings.policy_file)  # errors name the file and the field
    today = settings.today or datetime.now(UTC).date()
    command = plan_command(settings.data_dir, today, settings.plan_dir)
    manifest = read_manifest(settings.plan_dir, today)
    if manifest is None:
        console.print(
            f"no plan for today ({today}) in {settings.plan_dir}: offers get 409 until it "
            f"appears; make it with: {command}",
            style="yellow",
            markup=False,
        )
    else:
        if manifest.get("policy", {}).get("digest") != policy_digest(policy):
            raise NboError(
                f"the plan for {today} in {settings.plan_dir} was made under another policy "
                f"than NBO_POLICY_FILE's; plan it again with that policy: {command} --policy FILE"
            )
        models = ", ".join(f"{arm} {m['uri']}" for arm, m in manifest["models"].items())
        console.print(f"serving the plan for {today} ({models}) from {settings.plan_dir}",
                      markup=False)  # fmt: skip
    InteractionStore(settings.database_url).close()  # migrate once, not in every worker
    os.environ[MIGRATED_ENV] = "1"
    if workers > 1:
        run_dir = Path(tempfile.mkdtemp(prefix="nbo-serve-"))
        (run_dir / "metrics").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir / "metrics")
        os.environ["NBO_RELOAD_FILE"] = str(run_dir / "reload")
        (run_dir / "reload").write_text("")
        os.environ[FAILED_ENV] = str(run_dir / "failed")
        return run_dir / "failed"
    return None


@fails_cleanly
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    plans: Annotated[
        Path | None,
        typer.Option("--plans", help="Plan directory nbo plan writes (default NBO_PLAN_DIR)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Club dataset the plans are made from (default NBO_DATA_DIR)."),
    ] = None,
    limit_concurrency: Annotated[
        int,
        typer.Option(help="Requests (connections) one worker takes at once; more get 503.", min=1),
    ] = 1024,
) -> None:
    """Run the offer service (FastAPI under uvicorn) on the day plans of nbo plan, until Ctrl-C."""
    import uvicorn

    failed = prepare_serving(workers, plans, data)
    uvicorn.run(
        "nbo.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=10,
        backlog=4096,
        limit_concurrency=limit_concurrency,
        access_log=False,  # Prometheus has the request counts and latencies
        proxy_headers=False,  # nbo reads no client address; a proxy's headers change nothing
        # several workers take connections in turn (nbo/serving/accept.py)
        loop="nbo.serving.accept:TurnTakingLoop" if workers > 1 else "auto",
    )
    if failed is not None and failed.exists():  # a worker could not start: it said why
        raise NboError(f"the service did not start: {failed.read_text()}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
