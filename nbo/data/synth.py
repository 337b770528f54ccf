"""A synthetic loyalty club: realistic shopping, campaigns and coupon redemptions, at any size.

The club has a Zipf-like assortment in a category tree (departments > categories >
subcategories, brands); members who join during the period or lapse; a weekday and hour rhythm
per member; staples repurchased on a member- and product-specific cycle (milk every week or so,
coffee every three); and targeted campaigns whose coupons are redeemed more often by members who
already buy the coupon's products. Every table follows ``nbo.data.contract``.

Members are generated in chunks (in up to two worker processes), each chunk from its own random
stream, and streamed to Parquet part files, so memory stays flat however large the club.

With ``counterfactuals=True`` every campaign is a randomized experiment with known outcomes:
a share of each audience is held out as controls (``campaign_audience.treated`` false), members
respond to offers by type (persuadable, indifferent, do not disturb), and the truth per audience
pair (the probability to buy the offer's products with and without the offer, to redeem, the
margin and the coupon's cost) is written beside the dataset in ``<OUT_DIR>.truth/``, never in it.
See ``nbo.data._synth_uplift`` for the model; :func:`read_truth` reads the truth back.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from nbo.data._synth_baskets import CHUNK_TABLES, member_chunk
from nbo.data._synth_catalogue import Catalogue, build_catalogue
from nbo.data._synth_members import HISTORY_DAYS
from nbo.data._synth_uplift import (
    MARGIN_SHARE,
    RESPONSE_SHARES,
    RESPONSE_TYPES,
    TRUTH_COLUMNS,
    TRUTH_SCHEMA,
)
from nbo.data.contract import TABLES
from nbo.data.io import atomic_dataset_dir, write_manifest, write_table
from nbo.data.validate import EARLIEST
from nbo.errors import DataContractError

__all__ = [
    "COUNTERFACTUAL_OFFERS",
    "MAX_WEEKS",
    "MIN_PRODUCTS",
    "TRUTH_SUFFIX",
    "generate_club",
    "read_truth",
    "truth_dir",
]

MIN_PRODUCTS = 10  # enough for a few categories, staples and coupons
MAX_WEEKS = 520  # ten years: keeps basket ids (member_id * 1000.. + visit) well inside Int64
SOURCE = "synth"
TRUTH_SUFFIX = ".truth"  # the truth of OUT_DIR is in OUT_DIR.truth, beside it
TRUTH_PAIRS = "pairs"
COUNTERFACTUAL_OFFERS = (20, 40)  # offers per campaign with counterfactuals: enough to learn from

Progress = Callable[[int, int], None]


def truth_dir(dataset_dir: str | os.PathLike[str]) -> Path:
    """Where the truth of a synthetic dataset with counterfactuals lives: beside it."""
    root = Path(dataset_dir).resolve()
    return root.with_name(root.name + TRUTH_SUFFIX)


def read_truth(dataset_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """The truth per (campaign, offer, member) of a club generated with ``counterfactuals``.

    Columns: campaign_id, offer_id, member_id, treated, response_type, p_buy_control,
    p_buy_treated, p_redeem_treated, value, coupon_cost (``manifest.json`` beside them says
    what each means). Raises :class:`DataContractError` if the dataset has no truth.
    """
    folder = truth_dir(dataset_dir) / TRUTH_PAIRS
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise DataContractError(
            f"{dataset_dir}: no counterfactual truth at {folder.parent} "
            "(generate the club with nbo data synth --counterfactuals)"
        )
    return pl.read_parquet(folder / "*.parquet", schema=TRUTH_SCHEMA)


def _check_arguments(
    members: int,
    products: int,
    weeks: int,
    seed: int,
    chunk_members: int,
    start: date,
    control_share: float,
) -> None:
    problems = []
    if not 0.0 < control_share < 1.0:
        problems.append(f"control_share must be between 0 and 1, exclusive (got {control_share})")
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


@dataclass(frozen=True)
class _Target:
    """Where chunks write: the dataset's directory, and the truth's with counterfactuals."""

    root: Path
    truth: Path | None = None
    control_share: float | None = None


def _write_member_chunk(
    target: _Target, catalogue: Catalogue, seed: int, chunk: int, first_member_id: int, n: int
) -> dict[str, int]:
    """Generate one chunk of members and write its part files; returns rows per table."""
    if target.control_share is None:
        tables = member_chunk(catalogue, seed, chunk, first_member_id, n)
    else:
        tables = member_chunk(
            catalogue, seed, chunk, first_member_id, n, control_share=target.control_share
        )
    part = f"part-{chunk:05d}.parquet"
    pairs = tables.pop(TRUTH_PAIRS, None)
    if pairs is not None and target.truth is not None:
        write_table(pairs, target.truth / TRUTH_PAIRS / part)
    return {name: write_table(frame, target.root / name / part) for name, frame in tables.items()}


def _worker_ignores_interrupts() -> None:
    # Ctrl-C reaches the whole process group: let only the parent stop the run, so it can wait
    # for the running chunks and remove the temporary directory instead of a broken pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _can_spawn() -> bool:
    """Spawned workers re-import the main script; one read from stdin cannot be re-imported."""
    path = getattr(sys.modules["__main__"], "__file__", None)
    return path is None or os.path.exists(path)


def _run_chunks(
    target: _Target,
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
            on_chunk(n, _write_member_chunk(target, catalogue, seed, chunk, first_member_id, n))
        return
    # spawn, not fork: forking a process whose polars thread pool is running can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_ignores_interrupts
    ) as pool:
        futures: dict[Future[dict[str, int]], int] = {
            pool.submit(_write_member_chunk, target, catalogue, seed, chunk, first, n): n
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
    counterfactuals: bool = False,
    control_share: float = 0.2,
    seasonality: float = 0.0,
) -> dict[str, int]:
    """Write a synthetic club dataset to ``out_dir`` (atomically); returns rows per table.

    Member ids are ``1..members``; receipts run for ``weeks`` weeks from ``start``. The same
    arguments (``seed``, sizes, ``start`` and ``chunk_members``) give byte-identical tables;
    ``workers`` (default: up to two processes) never changes the data. ``progress`` is called
    with (members done, members) as chunks finish. Raises ``ValueError`` for invalid sizes.

    With ``counterfactuals`` every campaign holds ``control_share`` of its audience out at
    random, has 20-40 offers, and the truth per audience pair is written (atomically, replaced
    with ``overwrite`` like the dataset) to ``<out_dir>.truth/``; see :func:`read_truth`.
    Without it the tables are the same as ever and ``overwrite`` removes a stale truth.
    ``seasonality`` in [0, 1) is the amplitude of a yearly cycle in every member's visit rate,
    peaking before Christmas (0, the default, leaves the tables as they were).

    A chunk of 20,000 members needs about 0.7 GB; larger chunks save little time and cost
    more memory and page faults. Workers are spawned processes, so a script that calls this
    with several chunks needs the usual ``if __name__ == "__main__":`` guard.
    """
    if isinstance(start, datetime):
        start = start.date()
    _check_arguments(members, products, weeks, seed, chunk_members, start, control_share)
    catalogue, club_tables = build_catalogue(
        seed,
        members=members,
        products=products,
        weeks=weeks,
        start=start,
        offers_per_campaign=COUNTERFACTUAL_OFFERS if counterfactuals else None,
    )
    if seasonality:
        if not 0 < seasonality < 1:
            raise ValueError(f"seasonality must be in [0, 1), got {seasonality}")
        catalogue = replace(catalogue, seasonality=seasonality)
    chunks = [
        (chunk, first, min(chunk_members, members - first + 1))
        for chunk, first in enumerate(range(1, members + 1, chunk_members))
    ]
    if workers is None:
        workers = min(2, os.cpu_count() or 1, len(chunks)) if _can_spawn() else 1
    rows = dict.fromkeys(TABLES, 0)
    truth_out = truth_dir(out_dir)
    with ExitStack() as stack:
        root = stack.enter_context(atomic_dataset_dir(out_dir, overwrite=overwrite))
        target = _Target(root)
        if counterfactuals:
            truth = stack.enter_context(atomic_dataset_dir(truth_out, overwrite=overwrite))
            (truth / TRUTH_PAIRS).mkdir()
            target = _Target(root, truth, control_share)
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

        _run_chunks(target, catalogue, seed, chunks, workers, count)
        extra = {"counterfactuals": True, "control_share": control_share} if counterfactuals else {}
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
            **extra,
        )
        if target.truth is not None:
            _write_truth_manifest(target.truth, out_dir, seed, control_share)
    if not counterfactuals and overwrite and truth_out.is_dir():
        shutil.rmtree(truth_out)  # the truth of the dataset just replaced
    return rows


def _write_truth_manifest(
    truth: Path, out_dir: str | os.PathLike[str], seed: int, control_share: float
) -> None:
    manifest = {
        "dataset": str(Path(out_dir).resolve()),
        "seed": seed,
        "control_share": control_share,
        "response_shares": dict(zip(RESPONSE_TYPES, RESPONSE_SHARES, strict=True)),
        "margin_share": MARGIN_SHARE,
        "offers_per_campaign": list(COUNTERFACTUAL_OFFERS),
        "campaign_window": "start_date .. end_date of the campaign, inclusive",
        "columns": TRUTH_COLUMNS,
    }
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
