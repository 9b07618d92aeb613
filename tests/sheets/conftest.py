"""Shared helpers for the extraction-layer tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent
VALID = HERE / "valid"
MALFORMED = HERE / "malformed"
ROOT = HERE.parent.parent


@pytest.fixture
def valid_copy(tmp_path: Path) -> Path:
    """A writable copy of the valid CSV fixture folder."""
    dst = tmp_path / "extraction"
    shutil.copytree(VALID, dst)
    return dst
