"""Shared fixture for the search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaexercise.searches.store import SearchFolder


@pytest.fixture
def folder(tmp_path: Path) -> SearchFolder:
    return SearchFolder(tmp_path / "searches")
