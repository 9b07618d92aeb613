"""Shared fixtures of the batch tests: the metafor reference written by tests/reference/make_batch_reference.R."""

import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "batch_reference.json"


@pytest.fixture(scope="session")
def batch_reference() -> dict:
    return json.loads(REFERENCE.read_text())
