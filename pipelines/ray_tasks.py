"""What nbo's Ray tasks share: their CPUs and threads, the models handed to them, and writing
their files atomically so Ray may retry them.

The Ray engines (:mod:`nbo.pipelines.plan_shards`, :mod:`nbo.pipelines.decide_shards`) submit
one task per member shard or chunk with :func:`task_options`; a task writes its results with
:func:`write_parquet` (or another atomic writer) and returns a small summary.
"""

from __future__ import annotations

import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import polars as pl

__all__ = ["MAX_RETRIES", "TASK_CPUS", "PickledModels", "task_options", "write_parquet"]

TASK_CPUS = 1
"""CPUs of one task; polars and BLAS inside it use as many threads."""
MAX_RETRIES = 3
"""Times Ray runs a task again whose worker died (a killed process, a lost node)."""
_THREAD_VARIABLES = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "MKL_NUM_THREADS")  # fmt: skip

Models = TypeVar("Models")


def task_options() -> dict[str, Any]:
    """Ray options of every task: :data:`TASK_CPUS`, threads to match, :data:`MAX_RETRIES`."""
    threads = str(TASK_CPUS)
    env = dict.fromkeys(_THREAD_VARIABLES, threads)
    return {"num_cpus": TASK_CPUS, "max_retries": MAX_RETRIES, "runtime_env": {"env_vars": env}}


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically: a retried task replaces the file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    frame.write_parquet(part)
    os.replace(part, path)


@dataclass(frozen=True)
class PickledModels(Generic[Models]):
    """Models pickled on the driver and unpickled in the task (:meth:`load`), not by Ray: Ray
    hands an object's arrays over read-only, and a model (implicit's nearest-neighbour scorer)
    needs its own writable ones."""

    data: bytes

    @classmethod
    def of(cls, models: Models) -> PickledModels[Models]:
        return cls(pickle.dumps(models))

    def load(self) -> Models:
        return cast("Models", pickle.loads(self.data))
