"""Where batch work runs: ``--engine local`` (this process) or ``--engine ray`` (member shards as
Ray tasks, on a local Ray started for the run or on an existing cluster).

The commands' options are in :mod:`nbo.cli.common` (``EngineOpt``, ``RayAddressOpt``); the
pipelines get the choice as plain values and connect through :func:`ray_session`. Ray is an
extra (``pip install 'nbo[ray]'``): without it, asking for the ray engine is a clear error.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from enum import StrEnum
from types import ModuleType

from nbo.errors import NboError

__all__ = ["Engine", "EngineError", "import_ray", "ray_session"]


class Engine(StrEnum):
    """The engine a batch command runs on."""

    local = "local"
    ray = "ray"


class EngineError(NboError):
    """The chosen engine cannot run here (Ray not installed, cluster not reachable)."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or an :class:`EngineError` naming the extra that installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise EngineError(
            "--engine ray needs Ray, which is not installed; install the extra with: "
            "pip install 'nbo[ray]'"
        ) from None


@contextlib.contextmanager
def ray_session(address: str = "") -> Iterator[ModuleType]:
    """Ray, connected for the block: the running session if this process has one, else the
    cluster at ``address``, else a local Ray started here (and shut down after the block)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise EngineError(f"--engine ray could not start or reach {where}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
