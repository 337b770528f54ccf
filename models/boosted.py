"""Faster, exact inference for scikit-learn's histogram gradient boosting on millions of rows.

A tree of a handful of splits reads a handful of features, each against one or two thresholds,
so which leaf a row lands in depends only on a few small codes: per split feature, how many of
the tree's thresholds on it the row's bin exceeds, or "missing". :class:`TreeTables` keeps, per
tree, a 256-entry table from bin to code (times its stride) for each of those features and a
table of leaf values over every combination of codes, filled by the tree's own
``predict_binned`` on one representative row per combination, so each row gets the very leaf
value scikit-learn's tree walk would give it. A row's score is then a few table look-ups per
tree instead of a walk, in NumPy over blocks of rows; trees whose table would be big (deep
trees) are walked by scikit-learn as before. The leaf values are added to the baseline tree by
tree in the model's order, as ``_raw_predict`` does, so the raw scores are the same numbers.

Numerical features only; a model with categorical features, or several trees per iteration,
gets ``None`` from :meth:`TreeTables.of` and its caller keeps scikit-learn's path.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["TreeTables", "raw_predict"]

_MAX_CELLS = 4_096  # leaf-table size above which a tree is walked by scikit-learn instead
_BLOCK_ROWS = 1 << 16  # rows per block: a block's working arrays stay in the CPU caches
_N_BINS = 256  # bins are uint8


@dataclass(frozen=True)
class _Table:
    features: tuple[int, ...]  # the features the tree splits on
    codes: tuple[NDArray[np.int32], ...]  # per feature: bin -> code * stride (256 entries)
    leaves: NDArray[np.float64]  # leaf value of every combination of codes


@dataclass(frozen=True)
class TreeTables:
    """Look-up tables of the trees of one fitted ``HistGradientBoosting*`` model."""

    baseline: float
    missing_bin: int
    trees: tuple[_Table | Any, ...]  # a _Table, or the TreePredictor to walk

    @staticmethod
    def of(model: Any) -> TreeTables | None:
        """The tables of ``model`` (built once per model object), or None if not supported."""
        if model in _CACHE:
            return _CACHE[model]
        tables = _build(model)
        _CACHE[model] = tables
        return tables

    def raw(self, binned: NDArray[np.uint8], n_threads: int = 1) -> NDArray[np.float64]:
        """Baseline plus every tree's leaf value for each row of ``binned`` (model's bins).

        ``n_threads``: OpenMP threads of the trees that are walked.
        """
        n_rows = binned.shape[0]
        raw = np.full(n_rows, self.baseline)
        walked = [tree for tree in self.trees if not isinstance(tree, _Table)]
        if len(walked) == len(self.trees):  # deep trees only: walked on the whole array
            for tree in walked:
                raw += tree.predict_binned(binned, self.missing_bin, n_threads)
            return raw
        rows = np.ascontiguousarray(binned)
        columns = np.asfortranarray(binned)
        index = np.empty(min(n_rows, _BLOCK_ROWS), dtype=np.int32)
        code = np.empty_like(index)
        value = np.empty(index.shape, dtype=np.float64)
        for start in range(0, n_rows, _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, n_rows)
            size = stop - start
            block = columns[start:stop]
            out, idx, tmp, val = raw[start:stop], index[:size], code[:size], value[:size]
            for tree in self.trees:
                if not isinstance(tree, _Table):
                    out += tree.predict_binned(rows[start:stop], self.missing_bin, n_threads)
                    continue
                np.take(tree.codes[0], block[:, tree.features[0]], out=idx)
                for feature, codes in zip(tree.features[1:], tree.codes[1:], strict=True):
                    np.take(codes, block[:, feature], out=tmp)
                    idx += tmp
                np.take(tree.leaves, idx, out=val)
                out += val
        return raw


_CACHE: weakref.WeakKeyDictionary[Any, TreeTables | None] = weakref.WeakKeyDictionary()


def _build(model: Any) -> TreeTables | None:
    predictors = getattr(model, "_predictors", None)
    mapper = getattr(model, "_bin_mapper", None)
    if predictors is None or mapper is None or getattr(model, "is_categorical_", None) is not None:
        return None
    if any(len(trees) != 1 for trees in predictors):
        return None
    missing = int(mapper.missing_values_bin_idx_)
    n_features = len(mapper.n_bins_non_missing_)
    built = [_tree_table(tree, missing, n_features) for (tree,) in predictors]
    return TreeTables(float(np.ravel(model._baseline_prediction)[0]), missing, tuple(built))


def _tree_table(tree: Any, missing: int, n_features: int) -> _Table | Any:
    nodes = tree.nodes
    inner = nodes[nodes["is_leaf"] == 0]
    if inner.size == 0 or inner["is_categorical"].any():
        return tree
    features = tuple(int(f) for f in np.unique(inner["feature_idx"]))
    thresholds = [np.unique(inner["bin_threshold"][inner["feature_idx"] == f]) for f in features]
    sizes = [t.size + 2 for t in thresholds]  # codes 0..len(t): thresholds below; +1: missing
    if int(np.prod(sizes)) > _MAX_CELLS:
        return tree
    strides = np.cumprod([1, *sizes[::-1]])[:-1][::-1]
    bins = np.arange(_N_BINS)
    codes, representatives = [], []
    for t, size, stride in zip(thresholds, sizes, strides, strict=True):
        code = np.searchsorted(t, bins, side="left")  # thresholds strictly below the bin
        code[missing] = size - 1
        codes.append((code * stride).astype(np.int32))
        # one bin per code: 0, just above each threshold, and the missing bin
        representatives.append(np.minimum(np.r_[0, t.astype(np.int64) + 1, missing], missing))
    grid = np.zeros((int(np.prod(sizes)), n_features), dtype=np.uint8)
    cells = np.indices(sizes).reshape(len(sizes), -1)
    for feature, reps, cell in zip(features, representatives, cells, strict=True):
        grid[:, feature] = reps[cell]
    leaves = np.asarray(tree.predict_binned(grid, missing, 1), dtype=np.float64)
    return _Table(features, tuple(codes), leaves)


def raw_predict(model: Any, x: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]:
    """``model._raw_predict(x)`` of a single-output model, through :class:`TreeTables`.

    Trees too deep for a table are walked on the binned features (one byte per feature instead
    of eight: about twice as fast as on the raw values), on ``n_threads`` OpenMP threads (one:
    a caller runs models side by side, and on a busy machine OpenMP's waits cost more than
    they save). Falls back to scikit-learn's own ``_raw_predict`` where the tables do not apply.
    """
    tables = TreeTables.of(model)
    if tables is None:
        return np.asarray(model._raw_predict(x)[:, 0], dtype=np.float64)
    return tables.raw(model._bin_mapper.transform(x), n_threads)
