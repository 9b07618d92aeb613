"""Fixtures shared by every test folder.

The repository root is itself a project: the back-pain review, declared in its review.yaml. Tests that read
its sheets (extraction/, the fixtures in tests/sheets/valid and malformed, the hand-built folders of
tests/analyses) read them with that project's vocabulary, as `metaexercise validate` does in the root; the
package itself names no review's words (without a vocabulary it reads the generic one).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from metaexercise.extraction.vocabulary import SheetVocabulary
from metaexercise.review.declaration import load_review

ROOT = Path(__file__).resolve().parents[1]


@cache
def back_pain_vocabulary() -> SheetVocabulary:
    """The back-pain review's sheet vocabulary, from the repository root's review.yaml."""
    return load_review(ROOT / "review.yaml").sheet_vocabulary()


@pytest.fixture(name="back_pain_vocabulary", scope="session")
def back_pain_vocabulary_fixture() -> SheetVocabulary:
    """The back-pain review's sheet vocabulary (`Review.sheet_vocabulary()` of the root's review.yaml)."""
    return back_pain_vocabulary()
