"""The contract in code and in docs/data-contract.md say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from nbo.data.contract import TABLES, table_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def doc_sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {part.split("\n", 1)[0].strip(): part for part in parts[1:]}


@pytest.mark.parametrize("name", list(TABLES))
def test_every_column_is_documented_with_its_type(name: str) -> None:
    section = doc_sections()[name]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| (\w+) \| ([\w()]+) \|", section, flags=re.MULTILINE)
        if m.group(1) != "column"
    }
    spec = TABLES[name]
    assert set(rows) == {c.name for c in spec.columns}
    for col in spec.columns:
        assert rows[col.name] == doc_type(col.dtype), col.name


def doc_type(dtype: pl.DataType) -> str:
    return "Datetime(us)" if dtype == pl.Datetime("us") else str(dtype)


def test_keys_refer_to_declared_columns() -> None:
    for spec in TABLES.values():
        names = {c.name for c in spec.columns}
        assert set(spec.primary_key) <= names
        for fk in spec.foreign_keys:
            assert set(fk.columns) <= names
            assert set(fk.ref_columns) <= {c.name for c in TABLES[fk.ref_table].columns}
            for col, ref in zip(fk.columns, fk.ref_columns, strict=True):
                assert spec.column(col).dtype == TABLES[fk.ref_table].column(ref).dtype


def test_key_columns_are_required_and_not_null() -> None:
    for spec in TABLES.values():
        for name in spec.primary_key:
            assert spec.column(name).required and not spec.column(name).nullable


def test_unknown_table_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="members, products"):
        table_spec("receipts")


def test_schema_is_polars() -> None:
    assert TABLES["transactions"].schema["ts"] == pl.Datetime("us")
