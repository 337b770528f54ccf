"""Member keys as clubs have them: the club's own member numbers beside nbo's integer ids.

Clubs number members in their own way: card numbers with leading zeros (``0012345678``),
alphanumeric ids (``SE-88A1``). Inside nbo every member is an ``Int64`` (fast joins, compact
plans); at every edge (CLI files, API requests and answers) the club's key goes in and comes out.

``nbo data import files`` keeps the club's keys when they are not plain integers: each key's
internal id is a stable 63-bit hash of its text (BLAKE2b), so re-importing a bigger export
gives every known member the same id (models, plans and the interaction history stay valid),
and the pairs are written beside the dataset as ``member_keys.parquet``. A dataset without that
file (Complete Journey, synthetic clubs) uses its integer ids as the keys: nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.contract import TableSpec
from nbo.errors import NboError
from nbo.memberkey import UnknownMemberError, member_id_of
from nbo.memberkey import hash_id as _hash_id

__all__ = [
    "KEYS_FILE",
    "MemberKeys",
    "UnknownMemberError",
    "is_integer_key",
    "key_ids",
    "keyed_member_ids",
    "keyed_spec",
    "member_id_of",
]

KEYS_FILE = "member_keys.parquet"
KEY_COLUMNS = {"member_key": pl.String(), "member_id": pl.Int64()}
# A key that round-trips through Int64 unchanged: no sign, no leading zeros, at most 18 digits.
_INTEGER = r"^(0|[1-9][0-9]{0,17})$"


def is_integer_key(keys: pl.Expr) -> pl.Expr:
    """True where a key is a plain integer that an Int64 id can stand for without change."""
    return keys.str.contains(_INTEGER)


def key_ids(keys: Iterable[str]) -> pl.DataFrame:
    """``member_key`` → ``member_id`` for distinct keys; ids are stable hashes of the key text.

    Two keys with one id (odds about 1 in 10^11 for ten million members) are an error naming
    both, never a silent merge of two members.
    """
    distinct = sorted(set(keys))
    ids = np.fromiter((_hash_id(k) for k in distinct), dtype=np.int64, count=len(distinct))
    frame = pl.DataFrame({"member_key": distinct, "member_id": ids}, schema=KEY_COLUMNS)
    clash = frame.filter(pl.col("member_id").is_duplicated())
    if clash.height:
        shown = ", ".join(repr(k) for k in clash["member_key"].head(4))
        raise NboError(f"member keys {shown} hash to the same internal id; report this as a bug")
    return frame.sort("member_id")


class MemberKeys:
    """The club key ↔ internal id pairs of one dataset (or identity when it has none)."""

    def __init__(self, pairs: pl.DataFrame | None) -> None:
        self.pairs = pairs

    @classmethod
    def of(cls, root: str | Path) -> MemberKeys:
        """The key table beside the dataset at ``root``, or identity if it has none."""
        path = Path(root) / KEYS_FILE
        return cls(pl.read_parquet(path) if path.is_file() else None)

    @property
    def keyed(self) -> bool:
        """True if the club's keys are strings (a key table exists)."""
        return self.pairs is not None

    def ids(self, keys: Sequence[str | int], *, what: str = "member") -> np.ndarray:
        """Internal ids of club keys (see :func:`member_id_of`); a key of the wrong kind raises
        :class:`UnknownMemberError` naming it. A key the table does not hold yet (a member
        who joined after the import) gets its id all the same: the one a later import gives."""
        return np.fromiter(
            (member_id_of(k, keyed=self.keyed, what=what) for k in keys),
            dtype=np.int64,
            count=len(keys),
        )

    def including(self, keys: Sequence[str]) -> MemberKeys:
        """These keys and ``keys`` (members who joined after the import), to name them in output."""
        if self.pairs is None:
            return self
        extra = key_ids(keys).join(self.pairs, on="member_id", how="anti")
        return MemberKeys(pl.concat([self.pairs, extra]))

    def known(self, ids: np.ndarray) -> np.ndarray:
        """Which ``ids`` the key table holds (all of them when the keys are the ids)."""
        if self.pairs is None:
            return np.ones(len(ids), dtype=bool)
        return np.isin(ids, self.pairs["member_id"].to_numpy())

    def to_ids(self, frame: pl.DataFrame, column: str = "member_id") -> pl.DataFrame:
        """``frame`` with the club keys in ``column`` replaced by internal ids (same order)."""
        values = frame[column].to_list()
        return frame.with_columns(pl.Series(column, self.ids(values), dtype=pl.Int64))

    def to_keys(self, frame: pl.DataFrame, column: str = "member_id") -> pl.DataFrame:
        """``frame`` with internal ids in ``column`` replaced by the club's keys."""
        if self.pairs is None:
            return frame
        lookup = self.pairs.rename({"member_id": column})
        keyed = frame.join(lookup, on=column, how="left", maintain_order="left")
        return keyed.with_columns(pl.col("member_key").alias(column)).select(frame.columns)

    def key_of(self, member_id: int) -> str | int:
        """One member's club key (the id itself when the club's keys are integers)."""
        if self.pairs is None:
            return member_id
        row = self.pairs.filter(pl.col("member_id") == member_id)
        return str(row["member_key"][0]) if row.height else member_id


def keyed_spec(spec: TableSpec) -> TableSpec:
    """``spec`` with ``member_id`` read as text, for clubs whose member numbers are keys."""
    columns = tuple(
        replace(c, dtype=pl.String()) if c.name == "member_id" else c for c in spec.columns
    )
    return replace(spec, columns=columns)


def keyed_member_ids(
    frames: dict[str, pl.LazyFrame],
) -> tuple[dict[str, pl.LazyFrame], pl.DataFrame | None]:
    """Imported tables whose ``member_id`` was read as the club's text keys, with ids instead.

    Ids are stable hashes of the keys (see :func:`key_ids`); the key table is returned to be
    written beside the dataset. Tables whose ``member_id`` is already an integer pass unchanged.
    """
    keyed = {
        name: f.with_columns(pl.col("member_id").str.strip_chars())
        for name, f in frames.items()
        if f.collect_schema().get("member_id") == pl.String
    }
    if not keyed:
        return frames, None
    keys = pl.concat(
        [f.select(pl.col("member_id").alias("member_key")).unique() for f in keyed.values()]
    ).unique()
    pairs = key_ids(keys.collect()["member_key"].drop_nulls().to_list())
    lookup = pairs.lazy().rename({"member_key": "_member_key", "member_id": "_member_id"})
    mapped = {
        name: frame.join(lookup, left_on="member_id", right_on="_member_key", how="left")
        .with_columns(pl.col("_member_id").alias("member_id"))
        .select(frame.collect_schema().names())
        for name, frame in keyed.items()
    }
    return frames | mapped, pairs
