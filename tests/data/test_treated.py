"""``campaign_audience.treated``: randomized hold-outs through reading, validation and import."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from nbo.data.files import import_files
from nbo.data.io import ClubData
from nbo.data.validate import validate_dataset
from nbo.errors import DataContractError
from tests.conftest import tiny_tables
from tests.data.test_files import EXAMPLE, EXPORT, OFFERS, edit, write

MakeClub = Callable[..., Path]


def _audience(treated: pl.Series) -> pl.DataFrame:
    return tiny_tables()["campaign_audience"].with_columns(treated)


# --- reading -----------------------------------------------------------------------------------


def test_absent_treated_reads_as_everyone_treated(tiny_club: Path) -> None:
    assert "treated" not in ClubData(tiny_club).raw("campaign_audience").collect_schema()
    audience = ClubData(tiny_club).campaign_audience.collect()
    assert audience.schema["treated"] == pl.Boolean
    assert audience["treated"].to_list() == [True, True]


def test_stored_treated_is_kept(make_club: MakeClub) -> None:
    root = make_club(campaign_audience=_audience(pl.Series("treated", [True, False])))
    assert validate_dataset(root).ok, validate_dataset(root).render()
    assert ClubData(root).campaign_audience.collect()["treated"].to_list() == [True, False]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "shown"),
    [(["yes", "no"], ["yes", "no"]), ([2, 2], [2]), ([1, 0], [1, 0])],
)
def test_non_boolean_treated_names_file_column_and_rows(
    make_club: MakeClub, values: list[Any], shown: list[Any]
) -> None:
    root = make_club(campaign_audience=_audience(pl.Series("treated", values)))
    report = validate_dataset(root)
    [error] = report.errors
    assert (error.table, error.column) == ("campaign_audience", "treated")
    assert error.file.endswith("campaign_audience.parquet")
    assert "expected Boolean" in error.message and "true or false" in error.message
    assert error.rows == 2
    assert [e["treated"] for e in error.examples] == shown  # each odd value once, first row
    assert error.examples[0]["_row"] == 1
    assert f"row 1: treated={values[0]!r}" in error.render()


def test_null_treated_is_an_error(make_club: MakeClub) -> None:
    root = make_club(campaign_audience=_audience(pl.Series("treated", [True, None])))
    [error] = validate_dataset(root).errors
    assert (error.column, error.message, error.rows) == ("treated", "null values", 1)


def test_control_with_a_redemption_names_campaign_member_and_offer(make_club: MakeClub) -> None:
    # member 1 redeemed C1-a (tiny club); marking member 1 a control of C1 contradicts that
    root = make_club(campaign_audience=_audience(pl.Series("treated", [False, True])))
    [error] = validate_dataset(root).errors
    assert (error.table, error.column, error.rows) == ("campaign_audience", "treated", 1)
    assert "control member (treated = false) redeemed" in error.message
    [example] = error.examples
    assert (example["_row"], example["campaign_id"], example["member_id"]) == (1, "C1", 1)
    assert example["offer_id"] == "C1-a"
    assert "campaign_id='C1', member_id=1, offer_id='C1-a'" in error.render()


def test_control_without_a_redemption_is_fine(make_club: MakeClub) -> None:
    root = make_club(campaign_audience=_audience(pl.Series("treated", [True, False])))
    assert validate_dataset(root).findings == []


# --- import ------------------------------------------------------------------------------------


@pytest.fixture
def controls_export(tmp_path: Path) -> tuple[Path, Path]:
    """The example export with a hold-out column in the audience file, mapped to ``treated``."""
    export, mapping = tmp_path / "export", tmp_path / "mapping.yaml"
    for name, text in EXPORT.items():
        write(export, name, text)
    OFFERS.write_parquet(export / "erbjudanden.parquet")
    shutil.copy(EXAMPLE, mapping)
    write(export, "kampanjmottagare.csv", "kampanj_id;medlemsnummer;utskick\nK1;1;ja\nK1;2;nej\n")

    def change(m: dict[str, Any]) -> None:
        m["tables"]["campaign_audience"]["columns"]["treated"] = "utskick"

    edit(mapping, change)
    return export, mapping


def test_import_maps_a_column_to_treated(
    controls_export: tuple[Path, Path], tmp_path: Path
) -> None:
    export, mapping = controls_export
    import_files(export, mapping, tmp_path / "club")
    audience = ClubData(tmp_path / "club").campaign_audience.collect()
    assert audience.select("member_id", "treated").rows() == [(1, True), (2, False)]


def test_import_of_a_control_who_redeemed_fails_naming_them(
    controls_export: tuple[Path, Path], tmp_path: Path
) -> None:
    export, mapping = controls_export
    write(export, "kampanjmottagare.csv", "kampanj_id;medlemsnummer;utskick\nK1;1;nej\nK1;2;ja\n")
    with pytest.raises(DataContractError) as info:
        import_files(export, mapping, tmp_path / "club")
    message = str(info.value)
    assert "column treated (utskick)" in message and "control member" in message
    assert "kampanjmottagare.csv line 2: campaign_id='K1', member_id=1, offer_id='E1'" in message
    assert not (tmp_path / "club").exists()


def test_import_reports_values_that_are_not_booleans(
    controls_export: tuple[Path, Path], tmp_path: Path
) -> None:
    export, mapping = controls_export
    write(
        export, "kampanjmottagare.csv", "kampanj_id;medlemsnummer;utskick\nK1;1;ja\nK1;2;kanske\n"
    )
    with pytest.raises(DataContractError) as info:
        import_files(export, mapping, tmp_path / "club")
    message = str(info.value)
    assert "column 'utskick' (campaign_audience.treated)" in message
    assert "not a valid true/false" in message
    assert "kampanjmottagare.csv line 3: 'kanske'" in message


def test_import_from_parquet_accepts_1_0_and_names_a_2(
    controls_export: tuple[Path, Path], tmp_path: Path
) -> None:
    export, mapping = controls_export
    (export / "kampanjmottagare.csv").unlink()
    edit(mapping, lambda m: m["tables"]["campaign_audience"].update(file="mottagare.parquet"))
    audience = pl.DataFrame(
        {"kampanj_id": ["K1", "K1"], "medlemsnummer": [1, 2], "utskick": [1, 0]}
    )
    audience.write_parquet(export / "mottagare.parquet")
    import_files(export, mapping, tmp_path / "ok")
    assert ClubData(tmp_path / "ok").campaign_audience.collect()["treated"].to_list() == [
        True,
        False,
    ]
    audience.with_columns(utskick=pl.Series([1, 2])).write_parquet(export / "mottagare.parquet")
    with pytest.raises(DataContractError) as info:
        import_files(export, mapping, tmp_path / "bad")
    assert "mottagare.parquet row 2: '2'" in str(info.value)


def test_cli_import_with_a_bad_treated_value_exits_with_2(
    controls_export: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from nbo.cli import app

    export, mapping = controls_export
    write(export, "kampanjmottagare.csv", "kampanj_id;medlemsnummer;utskick\nK1;1;ja\nK1;2;2\n")
    args = ["data", "import", "files", str(export), "--mapping", str(mapping), str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "line 3: '2'" in result.output
    assert "Traceback" not in result.output
