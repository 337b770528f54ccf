"""Shared pieces of the command line: consoles, exit codes, clean failure on bad input."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

from nbo.engine import Engine
from nbo.errors import NboError

__all__ = [
    "EXIT_BAD_INPUT",
    "EngineOpt",
    "RayAddressOpt",
    "console",
    "err_console",
    "fails_cleanly",
]

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

EXIT_BAD_INPUT = 2


def fails_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn bad input (NboError, unreadable files) into a clear message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NboError as exc:
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
        except (OSError, pl.exceptions.PolarsError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err_console.print(
                f"[bold red]error:[/] {escape(first)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(EXIT_BAD_INPUT)

    return wrapper


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        envvar="NBO_ENGINE",
        help="Where the work runs: local (this process) or ray (one task per member shard).",
    ),
]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        "--ray-address",
        envvar="NBO_RAY_ADDRESS",
        help="The Ray cluster for --engine ray (ray://host:10001, auto); empty: start a local Ray.",
    ),
]
