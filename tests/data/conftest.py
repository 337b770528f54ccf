"""Fixtures of the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "mapping.example.yaml"


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    """A copy of docs/mapping.example.yaml to edit."""
    path = tmp_path / "mapping.yaml"
    shutil.copy(EXAMPLE, path)
    return path
