"""Batch decisions on Ray (``nbo decide --engine ray``): one task per member chunk, the same
decisions as the local engine.

The chunks are the local engine's (:func:`~nbo.pipelines.candidates.member_chunks`:
consecutive member_id ranges). A chunk's heavy work — its candidates, scores and
:func:`~nbo.decisioning.prepare.plan_static` rows — is one Ray task, which writes the rows to a
Parquet file atomically (a retried task replaces it whole) and returns a small summary.

The driver does, once, what the local engine does once per run: the member context
(:func:`~nbo.pipelines.candidates.build_members`: the visit model's club averages are over
every member it forecasts, so a chunk's forecast alone would differ) and the offers' club-wide
context (:class:`~nbo.pipelines.offer_context.OfferContext`: economics, popularity, features,
audiences). A task gets the offer context without the club's member list, and its chunk's
member context from a file. The driver then streams the chunks' files in member order into
:func:`~nbo.decisioning.batch.decide_chunks`, which prices the budgets club-wide, exactly as
it takes the local engine's chunks.

The decisions equal the local engine's up to the last bits of a float: a task's polars runs
with :data:`~nbo.pipelines.ray_tasks.TASK_CPUS` thread(s), and a sum's last bits depend on the
thread count (see :mod:`nbo.pipelines.plan_shards`). The club's data and the work folder must
be on storage every Ray node sees.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static
from nbo.engine import import_ray, ray_session
from nbo.features.history import History
from nbo.pipelines.candidates import chunk_candidates, member_chunks
from nbo.pipelines.offer_context import OfferContext
from nbo.pipelines.ray_tasks import PickledModels, task_options, write_parquet
from nbo.tracking.bundle import Bundle

__all__ = ["ChunkScored", "ScoredChunks", "scored_on_ray"]

Stage = Callable[[str], None]
_MEMBERS, _STATIC = "members", "static"


@dataclass(frozen=True)
class ChunkScored:
    """What a chunk's task returns: its members and candidates, and the Ray node it ran on."""

    chunk: int
    members: int
    candidates: int
    node_id: str


@dataclass(frozen=True)
class _Job:
    """What every task of a run gets (small: no member data)."""

    data_dir: str
    at: datetime
    channel: str
    policy: Policy
    context: OfferContext  # without members: a task's are its chunk's file
    folder: Path

    def path(self, part: str, chunk: int) -> Path:
        return self.folder / part / f"{chunk:05d}.parquet"


def _score_chunk(
    job: _Job, chunk: int, first: int, last: int, models: PickledModels[Bundle]
) -> ChunkScored:
    """One chunk (members ``first..last``): its static rows, written to its file."""
    bundle = models.load()
    history = History.at(ClubData(job.data_dir), job.at)
    people = pl.read_parquet(job.path(_MEMBERS, chunk))  # the chunk's member context
    context = replace(job.context, members=people.select("member_id").sort("member_id"))
    candidates = chunk_candidates(history, bundle, context, job.policy, first, last)
    static = plan_static(candidates, people, job.policy, at=job.at, channel=job.channel)
    write_parquet(static.collect(), job.path(_STATIC, chunk))
    node_id = str(import_ray().get_runtime_context().get_node_id())
    return ChunkScored(chunk, people.height, candidates.height, node_id)


@dataclass(frozen=True)
class ScoredChunks:
    """The chunks' static rows on disk, in member order, and their tasks' summaries."""

    paths: list[Path]
    tasks: list[ChunkScored]

    @property
    def candidates(self) -> int:
        return sum(task.candidates for task in self.tasks)

    def statics(self) -> Iterator[pl.DataFrame]:
        """Each chunk's static rows in member order, one read at a time."""
        for path in self.paths:
            yield pl.read_parquet(path)


@contextlib.contextmanager
def scored_on_ray(
    history: History,
    bundle: Bundle,
    offers: pl.DataFrame,
    members: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    members_per_chunk: int,
    ray_address: str = "",
    work_dir: Path | None = None,
    stage: Stage = lambda name: None,
) -> Iterator[ScoredChunks]:
    """Every chunk's static rows (``members``: :func:`build_members` of the whole club), scored
    by one Ray task per chunk into a work folder under ``work_dir`` (the system's temporary
    folder if None), which is removed after the block."""
    stage("the offers' club-wide context")
    context = OfferContext.build(history, offers, policy)
    chunks = member_chunks(context.members, members_per_chunk)
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".nbo-decide-", dir=work_dir))
    try:
        small = replace(context, members=context.members.clear())
        job = _Job(str(history.club.root), at, channel, policy, small, folder)
        for chunk, (first, last) in enumerate(chunks):
            people = members.filter(pl.col("member_id").is_between(first, last))
            write_parquet(people, job.path(_MEMBERS, chunk))
        with ray_session(ray_address) as ray:
            stage(f"scoring {len(chunks)} member chunk(s) on Ray")
            score = ray.remote(_score_chunk).options(**task_options())
            job_ref, models_ref = ray.put(job), ray.put(PickledModels.of(bundle))
            tasks: list[ChunkScored] = ray.get(
                [score.remote(job_ref, k, first, last, models_ref)
                 for k, (first, last) in enumerate(chunks)]
            )  # fmt: skip
        yield ScoredChunks([job.path(_STATIC, k) for k in range(len(chunks))], tasks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
