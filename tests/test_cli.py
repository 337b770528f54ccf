"""The command line: exit codes and messages for good and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nbo.cli import app, thread_defaults

runner = CliRunner()


def test_validate_ok(tiny_club: Path) -> None:
    result = runner.invoke(app, ["data", "validate", str(tiny_club)])
    assert result.exit_code == 0, result.output
    assert "meets the data contract" in result.output


def test_validate_bad_dataset_exits_2_without_traceback(tiny_club: Path) -> None:
    (tiny_club / "offers.parquet").write_bytes(b"not parquet")
    result = runner.invoke(app, ["data", "validate", str(tiny_club)])
    assert result.exit_code == 2
    assert "offers.parquet" in result.output and "cannot be read as Parquet" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_describe(tiny_club: Path) -> None:
    result = runner.invoke(app, ["data", "describe", str(tiny_club)])
    assert result.exit_code == 0, result.output
    assert "baskets per member" in result.output


def test_describe_missing_dir_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "describe", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such dataset directory" in result.output


def test_import_refuses_to_overwrite(tiny_club: Path) -> None:
    result = runner.invoke(app, ["data", "import", "completejourney", str(tiny_club)])
    assert result.exit_code == 2
    assert "--overwrite" in result.output


@pytest.mark.slow
def test_import_completejourney_cli(tmp_path: Path) -> None:
    out = tmp_path / "cj"
    result = runner.invoke(app, ["data", "import", "completejourney", str(out)])
    assert result.exit_code == 0, result.output
    assert "quantity 0" in result.output
    assert (out / "manifest.json").is_file()


def test_synth_writes_a_valid_club(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    result = runner.invoke(
        app, ["data", "synth", "--members", "50", "--products", "40", "--weeks", "3", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["data", "validate", str(out)]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2025-02-30"], "--start '2025-02-30' is not a date"),
        (["--products", "5"], "products"),
    ],
)
def test_synth_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["data", "synth", "--members", "10", *args, str(tmp_path / "s")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("args", "passive"),
    [
        (["serve", "--port", "8001"], True),
        (["decide", "--data", "d", "--at", "2017-09-04", "--out", "o.parquet"], True),
        (["train", "--data", "d", "--as-of", "2017-09-04"], False),
        (["demo"], False),
        (["--help"], False),
    ],
)
def test_thread_defaults_spin_openmp_only_in_batch_commands(args: list[str], passive: bool) -> None:
    defaults = thread_defaults(args)
    assert defaults["OPENBLAS_NUM_THREADS"] == "1"
    assert (defaults.get("OMP_WAIT_POLICY") == "PASSIVE") is passive
