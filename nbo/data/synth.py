"""A synthetic loyalty club: realistic shopping, campaigns and coupon redemptions, at any size.

The club has a Zipf-like assortment in a category tree (departments > categories >
subcategories, brands); members who join during the period or lapse; a weekday and hour rhythm
per member; staples repurchased on a member- and product-specific cycle (milk every week or so,
coffee every three); and targeted campaigns whose coupons are redeemed more often by members who
already buy the coupon's products. Every table follows ``nbo.data.contract``.

Members are generated in chunks (in up to two worker processes), each chunk from its own random
stream, and streamed to Parquet part files, so memory stays flat however large the club.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from datetime import date, datetime, timedelta
from pathlib import Path

from nbo.data._synth_baskets import CHUNK_TABLES, member_chunk
from nbo.data._synth_catalogue import Catalogue, build_catalogue
from nbo.data._synth_members import HISTORY_DAYS
from nbo.data.contract import TABLES
from nbo.data.io import atomic_dataset_dir, write_manifest, write_table
from nbo.data.validate import EARLIEST

__all__ = ["MAX_WEEKS", "MIN_PRODUCTS", "generate_club"]

MIN_PRODUCTS = 10  # enough for a few categories, staples and coupons
MAX_WEEKS = 520  # ten years: keeps basket ids (member_id * 1000.. + visit) well inside Int64
SOURCE = "synth"

Progress = Callable[[int, int], None]


def _check_arguments(
    members: int, products: int, weeks: int, seed: int, chunk_members: int, start: date
) -> None:
    problems = []
    if members < 1:
        problems.append(f"members must be at least 1 (got {members})")
    if products < MIN_PRODUCTS:
        problems.append(f"products must be at least {MIN_PRODUCTS} (got {products})")
    if not 1 <= weeks <= MAX_WEEKS:
        problems.append(f"weeks must be between 1 and {MAX_WEEKS} (got {weeks})")
    if seed < 0:
        problems.append(f"seed must be a non-negative integer (got {seed})")
    if chunk_members < 1:
        problems.append(f"chunk_members must be at least 1 (got {chunk_members})")
    # the contract's validator rejects timestamps before 1990 or more than a year ahead
    earliest = EARLIEST.date() + timedelta(days=HISTORY_DAYS + 1)
    if start < earliest:
        problems.append(
            f"start must be on or after {earliest} (members joined up to six years before it)"
        )
    end = start + timedelta(weeks=weeks)
    if end > date.today() + timedelta(days=365):
        problems.append(
            f"{weeks} weeks from {start} end on {end}, more than a year from today: "
            "receipts would lie in the future; use fewer weeks or an earlier start"
        )
    if problems:
        raise ValueError("; ".join(problems))


def _write_member_chunk(
    root: Path, catalogue: Catalogue, seed: int, chunk: int, first_member_id: int, n: int
) -> dict[str, int]:
    """Generate one chunk of members and write its part files; returns rows per table."""
    tables = member_chunk(catalogue, seed, chunk, first_member_id, n)
    return {
        name: write_table(frame, root / name / f"part-{chunk:05d}.parquet")
        for name, frame in tables.items()
    }


def _worker_ignores_interrupts() -> None:
    # Ctrl-C reaches the whole process group: let only the parent stop the run, so it can wait
    # for the running chunks and remove the temporary directory instead of a broken pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _can_spawn() -> bool:
    """Spawned workers re-import the main script; one read from stdin cannot be re-imported."""
    path = getattr(sys.modules["__main__"], "__file__", None)
    return path is None or os.path.exists(path)


def _run_chunks(
    root: Path,
    catalogue: Catalogue,
    seed: int,
    chunks: list[tuple[int, int, int]],
    workers: int,
    on_chunk: Callable[[int, dict[str, int]], None],
) -> None:
    """Write every chunk, in-process or in worker processes; ``on_chunk(members, rows)`` after
    each. On any error the workers finish their running chunk first, so nothing writes into
    the temporary directory once it is being removed."""
    if workers <= 1:
        for chunk, first_member_id, n in chunks:
            on_chunk(n, _write_member_chunk(root, catalogue, seed, chunk, first_member_id, n))
        return
    # spawn, not fork: forking a process whose polars thread pool is running can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_ignores_interrupts
    ) as pool:
        futures: dict[Future[dict[str, int]], int] = {
            pool.submit(_write_member_chunk, root, catalogue, seed, chunk, first, n): n
            for chunk, first, n in chunks
        }
        try:
            for future in as_completed(futures):
                on_chunk(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def generate_club(
    out_dir: str | os.PathLike[str],
    *,
    members: int,
    products: int,
    weeks: int,
    seed: int,
    start: date = date(2024, 1, 1),
    overwrite: bool = False,
    chunk_members: int = 20_000,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, int]:
    """Write a synthetic club dataset to ``out_dir`` (atomically); returns rows per table.

    Member ids are ``1..members``; receipts run for ``weeks`` weeks from ``start``. The same
    arguments (``seed``, sizes, ``start`` and ``chunk_members``) give byte-identical tables;
    ``workers`` (default: up to two processes) never changes the data. ``progress`` is called
    with (members done, members) as chunks finish. Raises ``ValueError`` for invalid sizes.

    A chunk of 20,000 members needs about 0.7 GB; larger chunks save little time and cost
    more memory and page faults. Workers are spawned processes, so a script that calls this
    with several chunks needs the usual ``if __name__ == "__main__":`` guard.
    """
    if isinstance(start, datetime):
        start = start.date()
    _check_arguments(members, products, weeks, seed, chunk_members, start)
    catalogue, club_tables = build_catalogue(
        seed, members=members, products=products, weeks=weeks, start=start
    )
    chunks = [
        (chunk, first, min(chunk_members, members - first + 1))
        for chunk, first in enumerate(range(1, members + 1, chunk_members))
    ]
    if workers is None:
        workers = min(2, os.cpu_count() or 1, len(chunks)) if _can_spawn() else 1
    rows = dict.fromkeys(TABLES, 0)
    with atomic_dataset_dir(out_dir, overwrite=overwrite) as root:
        for name, frame in club_tables.items():
            rows[name] = write_table(frame, root / f"{name}.parquet")
        for name in CHUNK_TABLES:
            (root / name).mkdir()
        done = 0

        def count(n: int, chunk_rows: dict[str, int]) -> None:
            nonlocal done
            for name, written in chunk_rows.items():
                rows[name] += written
            done += n
            if progress is not None:
                progress(done, members)

        _run_chunks(root, catalogue, seed, chunks, workers, count)
        write_manifest(
            root,
            SOURCE,
            rows,
            seed=seed,
            members=members,
            products=products,
            weeks=weeks,
            start=start.isoformat(),
            chunk_members=chunk_members,
        )
    return rows
