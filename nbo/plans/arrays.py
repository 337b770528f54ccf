"""A dataclass of arrays as a folder of Arrow files, read back memory-mapped.

Generic over the dataclass (a :class:`~nbo.decisioning.plan.Plan`, or
:class:`~nbo.plans.day.MemberRows`): each field is stored by what it holds —

* a NumPy array: ``<field>.arrow``, one column;
* a dict of equally long NumPy arrays (a plan's per-row columns): ``<field>.arrow``, a table;
* anything else (codes, ids, the day, the channel): ``fields.json``, with each field's kind.

Numbers and booleans are written as Arrow's fixed-width types of the same width (booleans as
bytes, dates and times as int64) and come back as read-only NumPy views of the memory-mapped
file: no copy, and pages that several worker processes read are shared between them. Object
arrays (strings, Python dates) are stored as Arrow strings — dictionary-encoded — or dates and
are materialised on read (private to the process, and slower: read rarely, or code them).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs
from numpy.typing import NDArray

from nbo.errors import NboError

__all__ = ["ArrayStoreError", "read_arrays", "write_arrays"]

FIELDS_FILE = "fields.json"
_DTYPE_KEY = b"nbo.dtype"
T = TypeVar("T")


class ArrayStoreError(NboError):
    """A folder that does not hold what :func:`read_arrays` was asked for."""


def _to_arrow(values: NDArray[Any]) -> tuple[pa.Array, str]:
    """The Arrow array of ``values`` and the NumPy dtype to restore on read."""
    values = np.ascontiguousarray(values)
    kind = values.dtype.kind
    if kind == "b":
        return pa.array(values.view(np.uint8)), "bool"
    if kind in "mM":
        return pa.array(values.view(np.int64)), str(values.dtype)
    if kind in "iuf":
        return pa.array(values), str(values.dtype)
    if kind == "O":
        array = pa.array(values.tolist())
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            array = array.dictionary_encode()
        return array, "object"
    if kind in "US":
        return pa.array(values.astype(object).tolist()), str(values.dtype)
    raise ArrayStoreError(f"cannot store an array of dtype {values.dtype}")


def _from_arrow(column: pa.Array, dtype: str) -> NDArray[Any]:
    """``column`` as NumPy: a zero-copy view for fixed-width types, else materialised."""
    if dtype == "object":
        if pa.types.is_dictionary(column.type):
            labels = np.empty(len(column.dictionary) + 1, dtype=object)
            labels[:-1] = column.dictionary.to_pylist()  # the last label is None (a null)
            codes = column.indices.fill_null(len(column.dictionary)).to_numpy()
            materialised: NDArray[Any] = labels[codes]
            return materialised
        out = np.empty(len(column), dtype=object)
        out[:] = column.to_pylist()
        return out
    wanted = np.dtype(dtype)
    if wanted.kind in "US":
        text: NDArray[Any] = np.array(column.to_pylist(), dtype=wanted)
        return text
    raw: NDArray[Any] = column.to_numpy(zero_copy_only=True)
    return raw if raw.dtype == wanted else raw.view(wanted)


def _write_table(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    columns, fields = [], []
    for name, values in arrays.items():
        array, dtype = _to_arrow(values)
        columns.append(array)
        fields.append(pa.field(name, array.type, metadata={_DTYPE_KEY: dtype.encode()}))
    # one record batch: every column is one contiguous buffer, mapped as one NumPy view
    batch = pa.record_batch(columns, schema=pa.schema(fields))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


def _read_table(path: Path) -> dict[str, NDArray[Any]]:
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    if reader.num_record_batches != 1:
        raise ArrayStoreError(f"{path}: {reader.num_record_batches} record batches, not one")
    batch = reader.get_batch(0)
    return {
        field.name: _from_arrow(batch.column(i), (field.metadata or {})[_DTYPE_KEY].decode())
        for i, field in enumerate(batch.schema)
    }


def _is_table(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values())


def write_arrays(obj: Any, directory: Path) -> None:
    """Write dataclass instance ``obj`` into ``directory`` (made; see the module docstring)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise ArrayStoreError(f"not a dataclass instance: {type(obj).__name__}")
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, dict[str, Any]] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, np.ndarray):
            _write_table(directory / f"{field.name}.arrow", {"values": value})
            meta[field.name] = {"kind": "array"}
        elif _is_table(value) and value:  # (an empty dict is JSON {})
            lengths = {len(v) for v in value.values()}
            if len(lengths) > 1:
                raise ArrayStoreError(f"{field.name}: columns of different lengths {lengths}")
            _write_table(directory / f"{field.name}.arrow", value)
            meta[field.name] = {"kind": "table"}
        elif isinstance(value, datetime):
            meta[field.name] = {"kind": "datetime", "value": value.isoformat()}
        elif isinstance(value, date):
            meta[field.name] = {"kind": "date", "value": value.isoformat()}
        else:
            try:
                json.dumps(value)
            except TypeError:
                raise ArrayStoreError(
                    f"{type(obj).__name__}.{field.name}: a {type(value).__name__} is neither "
                    "arrays nor JSON; nbo.plans.arrays cannot store it"
                ) from None
            meta[field.name] = {"kind": "json", "value": value}
    payload = {"type": type(obj).__name__, "fields": meta}
    (directory / FIELDS_FILE).write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")


def read_arrays(cls: type[T], directory: Path) -> T:
    """The ``cls`` instance :func:`write_arrays` wrote into ``directory``, memory-mapped."""
    try:
        payload = json.loads((directory / FIELDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArrayStoreError(f"{directory}: no readable {FIELDS_FILE} ({exc})") from None
    if payload.get("type") != cls.__name__:
        raise ArrayStoreError(f"{directory} holds a {payload.get('type')}, not a {cls.__name__}")
    stored: dict[str, dict[str, Any]] = payload["fields"]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        entry = stored.get(field.name)
        if entry is None:
            raise ArrayStoreError(
                f"{directory}: no {field.name!r} ({cls.__name__} has fields the plan was "
                "written without; make the plan again with this version of nbo)"
            )
        kind = entry["kind"]
        if kind == "array":
            values[field.name] = _read_table(directory / f"{field.name}.arrow")["values"]
        elif kind == "table":
            values[field.name] = _read_table(directory / f"{field.name}.arrow")
        elif kind == "datetime":
            values[field.name] = datetime.fromisoformat(entry["value"])
        elif kind == "date":
            values[field.name] = date.fromisoformat(entry["value"])
        else:
            values[field.name] = entry["value"]
    return cls(**values)
