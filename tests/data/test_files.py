"""Importing a club's own CSV/Parquet export with a column mapping (nbo.data.files)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from nbo.data.files import import_files, load_mapping
from nbo.data.io import ClubData, read_manifest
from nbo.data.validate import validate_dataset
from nbo.errors import DataContractError, DatasetExistsError, MappingError
from tests.data.conftest import EXAMPLE

# The export docs/mapping.example.yaml describes: cp1252 semicolon CSV with decimal commas, except
# the product catalogue (UTF-8, comma) and the offers (Parquet, written by the fixture).
RECEIPTS = "kvitto_id;medlemsnummer;artikelnummer;butik;tidpunkt;antal;belopp;medlemsrabatt\n"
EXPORT: dict[str, str] = {
    "medlemmar.csv": """medlemsnummer;medlem_sedan;aldersgrupp
1;2020-01-15;25-34
2;2021-06-01;35-44
3;NULL;55+
""",
    "artiklar.csv": """artikelnummer,avdelning,varugrupp,undergrupp,varumärke
100,Mejeri,Mjölk,Standardmjölk,Arla
101,Bröd,Limpa,,Pågen
102,Frukt,Äpplen,,
""",
    "kvitton/2024-01.csv": RECEIPTS
    + """5001;1;100;7;2024-01-05 10:15;2;25,90;0
5001;1;101;7;2024-01-05 10:15;1;32,50;5,00
5002;2;102;8;2024-01-20 18:02;1,25;31,10;-
""",
    "kvitton/2024-02.csv": RECEIPTS
    + """5003;3;100;7;2024-02-02 09:00;1;12,95;0
5004;1;102;7;2024-02-10 12:30;0,5;12,40;1,10
""",
    "kampanjer.csv": """kampanj_id;kampanjtyp;startdatum;slutdatum;namn
K1;TypA;01.01.2024;31.01.2024;Vinterrea
K2;TypB;01.02.2024;29.02.2024;Höstkampanj i förväg
""",
    "kampanjmottagare.csv": "kampanj_id;medlemsnummer\nK1;1\nK1;2\nK2;3\n",
    "erbjudande_artiklar.csv": "erbjudande_id;artikelnummer\nE1;100\nE2;101\n",
    "inlosen.csv": """medlemsnummer;erbjudande_id;inlost
1;E1;2024-01-05 10:15:00
3;E2;2024-02-03
""",
}
OFFERS = pl.DataFrame(
    {
        "erbjudande_id": ["E1", "E2"],
        "kampanj_id": ["K1", "K2"],
        "kupongkod": ["7312345", "7312346"],
        "rabattvarde": [10.0, None],
        "beskrivning": ["10 kr på mjölk", None],
    }
)


def write(root: Path, name: str, text: str, encoding: str | None = None) -> Path:
    """Write one export file the way the club's systems do: Windows (cp1252, CRLF) except the
    catalogue (UTF-8, LF)."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = encoding or ("utf-8" if name == "artiklar.csv" else "cp1252")
    path.write_text(text, encoding=encoding, newline="\r\n" if encoding == "cp1252" else "\n")
    return path


def write_export(root: Path, texts: dict[str, str] = EXPORT) -> Path:
    """The export files ``texts`` (name -> content) and the Parquet offers under ``root``."""
    for name, text in texts.items():
        write(root, name, text)
    OFFERS.write_parquet(root / "erbjudanden.parquet")
    return root


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "export")


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def fails(export: Path, mapping: Path, out: Path) -> str:
    """The message of the DataContractError the import raises."""
    with pytest.raises(DataContractError) as info:
        import_files(export, mapping, out)
    return str(info.value)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the mapping -----------------------------------------------------------------------------


def test_example_mapping_loads() -> None:
    mapping = load_mapping(EXAMPLE)
    assert set(mapping.tables) >= {"members", "products", "transactions"}
    assert mapping.csv_options("transactions").separator == ";"
    assert mapping.csv_options("products").separator == ","
    assert mapping.csv_options("products").decimal_comma  # inherited from the defaults
    assert mapping.tables["offers"].file_format == "parquet"


def test_happy_path_round_trips(export: Path, mapping: Path, tmp_path: Path) -> None:
    out = tmp_path / "club"
    report = import_files(export, mapping, out)

    assert validate_dataset(out).ok, validate_dataset(out).render()
    assert report.rows["transactions"] == 5  # both monthly files
    club = ClubData(out)
    lines = club.transactions.collect()
    assert lines["quantity"].to_list() == [2.0, 1.0, 1.25, 1.0, 0.5]  # decimal comma
    assert lines["sales_value"].to_list() == [25.90, 32.50, 31.10, 12.95, 12.40]
    assert lines["retail_disc"].to_list() == [0.0, 5.0, 0.0, 0.0, 1.10]  # "-" is empty -> 0
    assert lines["coupon_disc"].to_list() == [0.0] * 5  # not in the export -> default
    assert lines["ts"][2] == datetime(2024, 1, 20, 18, 2)
    members = club.members.collect()
    assert members["joined_at"].to_list() == [datetime(2020, 1, 15), datetime(2021, 6, 1), None]
    products = club.products.collect()
    assert products["category"].to_list() == ["Mjölk", "Limpa", "Äpplen"]  # UTF-8 file
    assert products["brand"].to_list() == ["Arla", "Pågen", None]
    campaigns = club.campaigns.collect()
    assert campaigns["name"][1] == "Höstkampanj i förväg"  # cp1252 transcoded
    assert campaigns["start_date"].to_list() == [date(2024, 1, 1), date(2024, 2, 1)]
    assert campaigns["targeted"].to_list() == [True, True]  # a constant
    offers = club.offers.collect()
    assert offers["description"].to_list() == ["10 kr på mjölk", None]  # from Parquet
    assert club.redemptions.collect()["ts"][1] == datetime(2024, 2, 3)

    manifest = read_manifest(out)
    assert manifest["source"] == "files"
    assert manifest["mapping"] == str(mapping)
    reasons = [note.reason for note in report.notes if note.table == "transactions"]
    assert any("retail_disc empty" in reason for reason in reasons)
    assert any("coupon_disc=0.0" in reason for reason in reasons)
    assert not list(tmp_path.glob(".club.*"))  # no temporary directory left behind


def test_overwrite_replaces_a_dataset(export: Path, mapping: Path, tmp_path: Path) -> None:
    out = tmp_path / "club"
    import_files(export, mapping, out)
    with pytest.raises(DatasetExistsError):
        import_files(export, mapping, out)
    import_files(export, mapping, out, overwrite=True)
    assert validate_dataset(out).ok


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda m: m["tables"]["transactions"]["columns"].update(quantiy="antal"),
            ["tables.transactions.columns.quantiy", "unknown column", "quantity"],
        ),
        (
            lambda m: m["tables"]["transactions"].update(colums={}),
            ["tables.transactions.colums", "unknown key", "columns, constants"],
        ),
        (
            lambda m: m["csv"].update(seperator=","),
            ["csv.seperator", "unknown key", "separator"],
        ),
        (
            lambda m: m["tables"].update(receipts=m["tables"]["transactions"]),
            ["tables.receipts", "unknown table", "members, products, transactions"],
        ),
        (
            lambda m: m["tables"].pop("products"),
            ["missing required table", "products"],
        ),
        (
            lambda m: m["tables"]["transactions"]["columns"].pop("basket_id"),
            ["tables.transactions.columns", "basket_id", "not mapped"],
        ),
        (
            lambda m: m["csv"].update(encoding="klingon"),
            ["csv.encoding", "unknown encoding 'klingon'", "cp1252"],
        ),
        (
            lambda m: m["tables"]["offers"].update(format="xlsx"),
            ["tables.offers.format", "'csv' or 'parquet'"],
        ),
        (
            lambda m: m["tables"]["campaigns"]["constants"].update(targeted="maybe"),
            ["tables.campaigns.constants.targeted", "'maybe'", "Boolean"],
        ),
        (
            lambda m: m["tables"]["members"]["datetime_format"].update(age_band="%Y"),
            ["tables.members.datetime_format.age_band", "not a date or timestamp"],
        ),
        (
            lambda m: m["tables"]["members"].update(file="medlemmar.xlsx"),
            ["tables.members.file", "format: csv"],
        ),
    ],
    ids=[
        "column-typo",
        "key-typo",
        "csv-key-typo",
        "unknown-table",
        "missing-table",
        "missing-column",
        "encoding",
        "format",
        "constant",
        "datetime-format",
        "extension",
    ],
)
def test_bad_mapping_names_the_key(
    mapping: Path, change: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    edit(mapping, change)
    with pytest.raises(MappingError) as info:
        load_mapping(mapping)
    message = str(info.value)
    assert message.startswith(str(mapping))
    for part in expected:
        assert part in message


def test_mapping_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("tables:\n  members: [file: x\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"not valid YAML: line \d+"):
        load_mapping(path)
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "missing.yaml")


# --- bad exports -----------------------------------------------------------------------------


def test_missing_source_file(export: Path, mapping: Path, tmp_path: Path) -> None:
    shutil.rmtree(export / "kvitton")
    message = fails(export, mapping, tmp_path / "club")
    assert "kvitton/*.csv: no file matches" in message
    assert "tables.transactions.file" in message


def test_missing_source_column_lists_the_columns_found(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    text = EXPORT["kvitton/2024-02.csv"].replace("antal;", "antal_st;", 1)
    write(export, "kvitton/2024-02.csv", text)
    message = fails(export, mapping, tmp_path / "club")
    assert "kvitton/2024-02.csv: column 'antal'" in message
    assert "did you mean 'antal_st'" in message
    assert "columns found: kvitto_id, medlemsnummer" in message


def test_wrong_separator_is_suggested(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(export, "kampanjmottagare.csv", EXPORT["kampanjmottagare.csv"].replace(";", "|"))
    message = fails(export, mapping, tmp_path / "club")
    assert "kampanjmottagare.csv: column 'kampanj_id'" in message
    assert "is the separator '|'?" in message


def test_text_in_a_number_column_names_file_column_and_line(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    text = EXPORT["kvitton/2024-02.csv"].replace(";0,5;", ";tre;")
    write(export, "kvitton/2024-02.csv", text)
    message = fails(export, mapping, tmp_path / "club")
    assert "column 'antal' (transactions.quantity): 1 value(s) are not a valid number" in message
    assert "kvitton/2024-02.csv line 3: 'tre'" in message


def test_decimal_comma_is_suggested(export: Path, mapping: Path, tmp_path: Path) -> None:
    edit(mapping, lambda m: m["csv"].update(decimal_comma=False))
    message = fails(export, mapping, tmp_path / "club")
    assert "'25,90'" in message
    assert "decimal_comma: true" in message


def test_timestamp_in_another_format(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(
        export,
        "kvitton/2024-01.csv",
        EXPORT["kvitton/2024-01.csv"].replace("2024-01-20 18:02", "20/01/2024 18:02"),
    )
    message = fails(export, mapping, tmp_path / "club")
    assert "not a valid timestamp in format '%Y-%m-%d %H:%M'" in message
    assert "kvitton/2024-01.csv line 4: '20/01/2024 18:02'" in message


def test_empty_file(export: Path, mapping: Path, tmp_path: Path) -> None:
    (export / "medlemmar.csv").write_bytes(b"")
    message = fails(export, mapping, tmp_path / "club")
    assert "medlemmar.csv: file is empty (0 bytes)" in message


def test_header_only_file_for_a_required_table(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(export, "artiklar.csv", EXPORT["artiklar.csv"].splitlines()[0] + "\n")
    message = fails(export, mapping, tmp_path / "club")
    assert "artiklar.csv: no rows (only a header)" in message


def test_non_utf8_file_suggests_an_encoding(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(export, "artiklar.csv", EXPORT["artiklar.csv"], encoding="cp1252")  # said to be utf8
    message = fails(export, mapping, tmp_path / "club")
    assert "artiklar.csv: not valid UTF-8 (line 1, byte b'\\xe4')" in message  # the ä of varumärke
    assert "encoding: cp1252" in message


def test_parquet_said_to_be_csv_and_the_other_way_round(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    (export / "erbjudanden.parquet").write_text("erbjudande_id;kampanj_id\nE1;K1\n")
    assert "is not a Parquet file" in fails(export, mapping, tmp_path / "club")
    OFFERS.write_parquet(export / "erbjudanden.parquet")
    OFFERS.write_parquet(export / "erbjudande_artiklar.csv")
    assert "is a Parquet file; set 'format: parquet'" in fails(export, mapping, tmp_path / "club")


def test_dangling_foreign_key_names_file_column_and_member(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    write(
        export,
        "kvitton/2024-02.csv",
        EXPORT["kvitton/2024-02.csv"] + "5005;999;100;7;2024-02-11 10:00;1;9,90;0\n",
    )
    message = fails(export, mapping, tmp_path / "club")
    assert (
        "kvitton/*.csv, column member_id (medlemsnummer): refers to rows that are not in" in message
    )
    assert "medlemmar.csv" in message
    assert "kvitton/2024-02.csv line 4: member_id=999" in message


def test_duplicate_primary_key(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(export, "medlemmar.csv", EXPORT["medlemmar.csv"] + "2;2022-01-01;18-24\n")
    message = fails(export, mapping, tmp_path / "club")
    assert "medlemmar.csv, column member_id (medlemsnummer): duplicate primary key" in message
    assert "member_id=2" in message


def test_campaign_that_ends_before_it_starts(export: Path, mapping: Path, tmp_path: Path) -> None:
    write(export, "kampanjer.csv", EXPORT["kampanjer.csv"].replace("31.01.2024", "31.12.2023"))
    message = fails(export, mapping, tmp_path / "club")
    assert "column start_date (startdatum): start_date is after end_date" in message
    assert "kampanjer.csv line 2" in message


@pytest.mark.parametrize(
    "broken",
    [
        ("medlemmar.csv", EXPORT["medlemmar.csv"] + "2;2022-01-01;18-24\n"),  # found by validation
        ("kampanjer.csv", EXPORT["kampanjer.csv"].replace("31.01.2024", "31/01/2024")),  # reading
    ],
    ids=["invalid", "unreadable"],
)
def test_failed_import_leaves_nothing_behind(
    export: Path, mapping: Path, tmp_path: Path, broken: tuple[str, str]
) -> None:
    out = tmp_path / "club"
    write(export, *broken)
    fails(export, mapping, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "mapping.yaml"]


def test_failed_overwrite_leaves_the_old_dataset_byte_identical(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    out = tmp_path / "club"
    import_files(export, mapping, out)
    before = digest(out)
    write(export, "kampanjer.csv", EXPORT["kampanjer.csv"].replace("31.01.2024", "31.12.2023"))
    with pytest.raises(DataContractError):
        import_files(export, mapping, out, overwrite=True)
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["club", "export", "mapping.yaml"]


def test_non_utf8_value_below_a_clean_header(export: Path, mapping: Path, tmp_path: Path) -> None:
    edit(mapping, lambda m: m["tables"]["products"]["columns"].update(brand="varumarke"))
    text = EXPORT["artiklar.csv"].replace("varumärke", "varumarke")
    write(export, "artiklar.csv", text, encoding="cp1252")
    message = fails(export, mapping, tmp_path / "club")
    assert "artiklar.csv: not valid UTF-8 (line 2, byte b'\\xf6')" in message  # the ö of Mjölk


def test_cli_reports_a_bad_mapping_with_exit_code_2(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from nbo.cli import app

    edit(mapping, lambda m: m["tables"]["transactions"]["columns"].update(quantiy="antal"))
    args = ["data", "import", "files", str(export), "--mapping", str(mapping), str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "tables.transactions.columns.quantiy: unknown column" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_bad_value_in_a_parquet_file_names_the_row(
    export: Path, mapping: Path, tmp_path: Path
) -> None:
    OFFERS.with_columns(pl.Series("rabattvarde", ["10", "tio"])).write_parquet(
        export / "erbjudanden.parquet"
    )
    message = fails(export, mapping, tmp_path / "club")
    assert "column 'rabattvarde' (offers.discount_value)" in message
    assert "erbjudanden.parquet row 2: 'tio'" in message


def test_tsv_files_in_nested_folders(export: Path, mapping: Path, tmp_path: Path) -> None:
    for month in ("2024-01", "2024-02"):
        text = EXPORT[f"kvitton/{month}.csv"].replace(";", "\t")
        write(export, f"kvitton/{month[:4]}/{month}.tsv", text)
        (export / f"kvitton/{month}.csv").unlink()

    def change(m: dict[str, Any]) -> None:
        m["tables"]["transactions"]["file"] = "kvitton/**/*.tsv"
        m["csv"].pop("separator")  # so .tsv means tabs; the other CSV files say ';' themselves
        for name in ("members", "campaigns", "campaign_audience", "offer_products", "redemptions"):
            m["tables"][name]["csv"] = {"separator": ";"}

    edit(mapping, change)
    report = import_files(export, mapping, tmp_path / "club")
    assert report.rows["transactions"] == 5
