"""The budget allocation's LP relaxation, solved with scipy's HiGHS."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import linprog

from nbo.decisioning.select import ListRules, Rows

__all__ = ["solve_lp"]


def solve_lp(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    rules: ListRules,
    limits: NDArray[np.float64],
) -> tuple[NDArray[np.float64], float]:
    """Solve the LP relaxation with HiGHS: budget prices (its duals) and its optimum."""
    n = len(rows)
    index = np.arange(n)
    blocks: list[sp.csr_matrix] = []
    bounds: list[NDArray[np.float64]] = []
    member_caps = rules.capacity[np.unique(rows.member)]
    for group, caps in (
        (rows.member, None),
        (rows.category, rules.max_per_category),
        (rows.member_campaign, rules.max_per_campaign),
    ):
        _, local = np.unique(group, return_inverse=True)
        matrix = sp.csr_matrix((np.ones(n), (local.reshape(-1), index)))
        blocks.append(matrix)
        bounds.append(member_caps.astype(float) if caps is None else np.full(matrix.shape[0], caps))
    finite_cap = np.isfinite(rules.cost_cap[rows.member])
    if finite_cap.any():
        _, local = np.unique(rows.member[finite_cap], return_inverse=True)
        cols = index[finite_cap]
        blocks.append(
            sp.csr_matrix(
                (rows.cost[finite_cap], (local.reshape(-1), cols)), shape=(local.max() + 1, n)
            )
        )
        owners = np.unique(rows.member[finite_cap])
        bounds.append(rules.cost_cap[owners])
    targets = list(zip(*np.nonzero(np.isfinite(limits)), strict=True))
    for c, k in targets:
        mine = rows.campaign == c
        blocks.append(
            sp.csr_matrix(
                (use[mine, k], (np.zeros(mine.sum(), dtype=int), index[mine])), shape=(1, n)
            )
        )
        bounds.append(np.array([limits[c, k]]))
    result = linprog(
        -priority,
        A_ub=sp.vstack(blocks, format="csr"),
        b_ub=np.concatenate(bounds),
        bounds=(0, 1),
        method="highs",
    )
    prices = np.zeros(limits.shape)
    if result.status != 0:  # pragma: no cover - HiGHS solves every bounded LP of this form
        raise RuntimeError(f"budget LP failed: {result.message}")
    if targets:
        duals = -np.asarray(result.ineqlin.marginals)[-len(targets) :]
        for (c, k), dual in zip(targets, duals, strict=True):
            prices[c, k] = max(float(dual), 0.0)
    return prices, float(-result.fun)
