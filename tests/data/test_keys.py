"""Member keys as clubs have them: string member numbers through import (nbo.data.keys)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nbo.data.files import import_files
from nbo.data.io import ClubData
from nbo.data.keys import KEYS_FILE, MemberKeys, UnknownMemberError, key_ids
from nbo.data.validate import validate_dataset
from nbo.errors import DataContractError
from tests.data.test_files import EXPORT, edit, write_export

# Card numbers with leading zeros and an alphanumeric id in place of 1, 2 and 3.
KEYS = {"1": "0000001", "2": "SE-2A", "3": "0000003"}


def keyed_export(root: Path, keys: dict[str, str]) -> Path:
    """The test export of test_files with its member numbers replaced by ``keys``."""
    columns = {"medlemmar.csv": 0, "kvitton/2024-01.csv": 1, "kvitton/2024-02.csv": 1}
    columns |= {"kampanjmottagare.csv": 1, "inlosen.csv": 0}
    texts = dict(EXPORT)
    for name, column in columns.items():
        lines = texts[name].splitlines()
        for i, line in enumerate(lines[1:], start=1):
            fields = line.split(";")
            fields[column] = keys[fields[column]]
            lines[i] = ";".join(fields)
        texts[name] = "\n".join(lines) + "\n"
    return write_export(root, texts)


def test_string_keys_are_kept_beside_stable_ids(tmp_path: Path, mapping: Path) -> None:
    out = tmp_path / "club"
    import_files(keyed_export(tmp_path / "export", KEYS), mapping, out)

    assert validate_dataset(out).ok, validate_dataset(out).render()
    pairs = pl.read_parquet(out / KEYS_FILE)
    assert sorted(pairs["member_key"]) == sorted(KEYS.values())
    keys = MemberKeys.of(out)
    assert keys.keyed
    club = ClubData(out)
    # every table refers to members by the same internal id
    ids = set(club.members.collect()["member_id"])
    assert ids == set(pairs["member_id"])
    assert set(club.transactions.collect()["member_id"]) <= ids
    redeemer = keys.ids(["0000003"])[0]
    assert redeemer in set(club.redemptions.collect()["member_id"])
    # the receipts of "SE-2A" come back under that key
    lines = keys.to_keys(club.transactions.collect())
    assert set(lines.filter(pl.col("basket_id") == 5002)["member_id"]) == {"SE-2A"}


def test_ids_do_not_move_when_the_club_grows(tmp_path: Path, mapping: Path) -> None:
    first = tmp_path / "first"
    import_files(keyed_export(tmp_path / "a", KEYS), mapping, first)
    grown = KEYS | {"3": "0009999"}  # another member in place of member 3
    second = tmp_path / "second"
    import_files(keyed_export(tmp_path / "b", grown), mapping, second)
    a, b = MemberKeys.of(first), MemberKeys.of(second)
    assert list(a.ids(["0000001", "SE-2A"])) == list(b.ids(["0000001", "SE-2A"]))
    # a member only one import holds still has the same id in both (a hash, not a counter)
    assert list(a.ids(["0009999"])) == list(b.ids(["0009999"]))
    assert b.known(b.ids(["0009999", "0000003"])).tolist() == [True, False]
    with pytest.raises(UnknownMemberError, match="strings"):
        b.ids([157])


def test_integer_member_numbers_keep_no_key_table(tmp_path: Path, mapping: Path) -> None:
    out = tmp_path / "club"
    import_files(keyed_export(tmp_path / "export", {"1": "1", "2": "2", "3": "3"}), mapping, out)
    assert not (out / KEYS_FILE).exists()
    assert ClubData(out).members.collect()["member_id"].sort().to_list() == [1, 2, 3]
    keys = MemberKeys.of(out)
    assert not keys.keyed
    assert list(keys.ids(["2", 3])) == [2, 3]
    for bad in ("SE-2A", "-1", True, "１２"):
        with pytest.raises(UnknownMemberError, match="whole numbers"):
            keys.ids([bad])


def test_integer_mode_names_the_rows_and_the_setting(tmp_path: Path, mapping: Path) -> None:
    edit(mapping, lambda data: data.update(member_keys="integer"))
    with pytest.raises(DataContractError) as info:
        import_files(keyed_export(tmp_path / "export", KEYS), mapping, tmp_path / "club")
    message = str(info.value)
    assert "line 3: 'SE-2A'" in message
    assert "member_keys: string" in message


def test_string_mode_keeps_plain_numbers_as_text(tmp_path: Path, mapping: Path) -> None:
    edit(mapping, lambda data: data.update(member_keys="string"))
    out = tmp_path / "club"
    import_files(keyed_export(tmp_path / "export", {"1": "1", "2": "2", "3": "3"}), mapping, out)
    keys = MemberKeys.of(out)
    assert keys.keyed
    frame = keys.to_keys(ClubData(out).members.collect())
    assert sorted(frame["member_id"]) == ["1", "2", "3"]


def test_key_ids_are_distinct_positive_and_round_trip() -> None:
    many = [f"{i:012d}" for i in range(50_000)]
    pairs = key_ids(many)
    assert pairs["member_id"].n_unique() == len(many)
    assert pairs["member_id"].min() >= 0  # type: ignore[operator]
    keys = MemberKeys(pairs)
    ids = keys.ids(many[:100])
    back = keys.to_keys(pl.DataFrame({"member_id": ids}))
    assert back["member_id"].to_list() == many[:100]
    assert np.array_equal(keys.to_ids(back)["member_id"].to_numpy(), ids)
