"""What an import did to the source rows: every exclusion and transformation, counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ImportNote", "ImportReport"]


@dataclass(frozen=True)
class ImportNote:
    """``rows`` source rows of ``table`` were excluded or transformed, and why."""

    table: str
    action: Literal["excluded", "transformed"]
    rows: int
    reason: str


@dataclass
class ImportReport:
    """Rows written per table plus every exclusion or transformation on the way."""

    source: str
    notes: list[ImportNote] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def exclude(self, table: str, rows: int, reason: str) -> None:
        self.notes.append(ImportNote(table, "excluded", int(rows), reason))

    def transform(self, table: str, rows: int, reason: str) -> None:
        self.notes.append(ImportNote(table, "transformed", int(rows), reason))
