"""The vocabularies the extraction tests read sheets with: the back-pain project's (from its review.yaml, the
repository root's project file) for the fixtures in valid/, malformed/ and the real extraction/."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from metaexercise.extraction import sheets
from metaexercise.review.declaration import load_review

ROOT = Path(__file__).resolve().parents[2]

#: The back-pain review's vocabulary, as `metaexercise validate` builds it in the repository root.
BACK_PAIN = load_review(ROOT / "review.yaml").sheet_vocabulary()

validate = partial(sheets.validate, vocabulary=BACK_PAIN)
load_extraction = partial(sheets.load_extraction, vocabulary=BACK_PAIN)
