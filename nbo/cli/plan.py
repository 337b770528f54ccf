"""Planning command: ``nbo plan`` (a day's plan, which ``nbo serve`` reads)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nbo.cli.common import EngineOpt, RayAddressOpt, console, fails_cleanly
from nbo.cli.decide import DatabaseOpt
from nbo.cli.models import DEFAULT_MODEL, DataOpt, _club, _date
from nbo.engine import Engine, import_ray
from nbo.errors import NboError

if TYPE_CHECKING:
    from nbo.plans import DayPlan, PlannedModel
    from nbo.tracking.bundle import Bundle

__all__ = ["plan_cmd", "register", "resolve_model"]


def resolve_model(uri: str) -> tuple[PlannedModel, Bundle]:
    """The bundle of ``uri`` and what a plan records of it (an alias pinned to its version)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nbo.plans import PlannedModel
    from nbo.tracking.registry import MODEL_NAME, RegistryError, configure, load_bundle

    configure()
    pinned = uri
    if uri.startswith(f"models:/{MODEL_NAME}@"):
        alias = uri.rsplit("@", 1)[1]
        try:
            version = MlflowClient().get_model_version_by_alias(MODEL_NAME, alias)
        except MlflowException:
            raise RegistryError(f"{uri}: the registry has no alias {alias!r}") from None
        pinned = f"models:/{MODEL_NAME}/{version.version}"
    bundle = load_bundle(pinned)
    uplift = bundle.uplift
    model = PlannedModel(
        uri=pinned,
        version=bundle.version,
        as_of=bundle.as_of,
        uplift_measured=bool(uplift.measured_),
        uplift_reason=str(uplift.reason_),
    )
    return model, bundle


def summary_table(plan: DayPlan, seconds: float) -> Table:
    table = Table(title=f"Plan for {plan.day:%Y-%m-%d}", title_justify="left")
    for column in ("arm", "model", "channel", "plan rows", "members with rows", "cold rows"):
        table.add_column(
            column, justify="left" if column in ("arm", "model", "channel") else "right"
        )
    for arm, part in plan.arms.items():
        for channel, plans in part.plans.items():
            table.add_row(
                arm,
                f"{part.model.uri} (version {part.model.version})",
                channel,
                f"{sum(p.rows for p in plans):,}",
                f"{sum(p.member_ids.size for p in plans):,}",
                f"{part.cold[channel].rows:,}",
            )
    table.caption = (
        f"{sum(m.size for m in plan.members):,} members in {plan.shards} shard(s), "
        f"{plan.offers.height} active offers, {plan.campaigns.height} campaigns; {seconds:.1f} s"
    )
    return table


@fails_cleanly
def plan_cmd(
    data: DataOpt,
    day: Annotated[str, typer.Option("--day", help="The day to plan (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option("--out", help="Plan directory (what nbo serve reads).")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            envvar="NBO_MODEL_URI",
            help="The champion's model: registry URI (models:/nbo@champion), runs:/… or a path.",
        ),
    ] = DEFAULT_MODEL,
    challenger: Annotated[
        str | None,
        typer.Option(
            envvar="NBO_CHALLENGER_URI",
            help="Also plan this model for the challenger arm (served to NBO_CHALLENGER_SHARE).",
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML (default policy if omitted).")
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help="Plan only this channel (repeatable; default: all)."),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(help="Member shards (default: one per 250,000 members).", min=1, max=4096),
    ] = None,
    database_url: DatabaseOpt = None,
    engine: EngineOpt = Engine.local,
    ray_address: RayAddressOpt = "",
) -> None:
    """Score the club once and write the day's plan: every request of the day is answered
    from it. Running it again for the same day replaces the plan whole. With --engine ray,
    each member shard is planned by a Ray task (same plan as --engine local)."""
    from nbo.cli.monitor import planned_drift
    from nbo.decisioning.policy import load_policy
    from nbo.history import InteractionStore
    from nbo.pipelines.plan import plan_day
    from nbo.pipelines.plan_shards import plan_day_sharded
    from nbo.plans.store import policy_digest
    from nbo.plans.writer import commit_day, open_day, write_arm

    start = time.perf_counter()
    if engine is Engine.ray:
        import_ray()  # before any work: without the extra, a clear error now
    when = _date(day, "--day")
    rules = load_policy(policy)
    for name in channel or ():
        rules.check_channel(name)
    club = _club(data)
    models = {"champion": resolve_model(model)}
    if challenger is not None:
        models["challenger"] = resolve_model(challenger)
    for arm, (planned, _) in models.items():
        if when.date() < planned.as_of.date():
            raise NboError(
                f"--day {when:%Y-%m-%d} is before the {arm} model's training date "
                f"{planned.as_of:%Y-%m-%d}; its decisions would see later data"
            )
    store = InteractionStore(database_url)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("reading the club", total=None)

        def stage(name: str) -> None:
            progress.update(task, description=name)

        with open_day(out, when.date()) as draft:
            if engine is Engine.ray:  # each shard's task writes its files into the draft
                plan = plan_day_sharded(
                    club, rules, store, when.date(), models, draft, channels=channel,
                    shards=shards, ray_address=ray_address, stage=stage,
                )  # fmt: skip
            else:
                plan = plan_day(
                    club, rules, store, when.date(), models, channels=channel, shards=shards,
                    stage=stage,
                )  # fmt: skip
                progress.update(task, description="writing the plan")
                for arm, part in plan.arms.items():
                    write_arm(part, draft, arm)
            store.close()
            source = club.manifest
            folder = commit_day(
                draft,
                plan,
                data={
                    "dir": str(data.resolve()),
                    "cut": when.isoformat(),  # history strictly before the day's midnight
                    "source": source.get("source"),
                    "created_at": source.get("created_at"),
                    "contract_version": source.get("contract_version"),
                },
                policy={"file": str(policy) if policy else None, "digest": policy_digest(rules)},
                member_keys="string" if club.keys.keyed else "integer",
                drift=planned_drift(plan, {arm: bundle for arm, (_, bundle) in models.items()}),
            )
    console.print(summary_table(plan, time.perf_counter() - start))
    console.print(
        f"wrote the plan for {when:%Y-%m-%d} to {out / f'{when:%Y-%m-%d}'} (-> {folder.name}); "
        f"serve it with: nbo serve --plans {out}",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
