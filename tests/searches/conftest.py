"""Shared helpers for the search tests: small exports written into a temporary folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from metaexercise.searches.store import SearchFolder


@pytest.fixture
def folder(tmp_path: Path) -> SearchFolder:
    return SearchFolder(tmp_path / "searches")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RIS_TWO = (
    "TY  - JOUR\n"
    "TI  - Individualized exercise for chronic low back pain: a randomized trial\n"
    "AU  - Müller, Anna\n"
    "AU  - Smith, J.\n"
    "PY  - 2023\n"
    "JO  - Spine\n"
    "DO  - 10.1097/BRS.0000000000004321\n"
    "AB  - Background: exercise helps.\n"
    "  Methods: a randomised trial.\n"
    "ER  - \n"
    "\n"
    "TY  - JOUR\n"
    "TI  - Motor control exercise versus general exercise\n"
    "AU  - Roe, B.\n"
    "PY  - 2024\n"
    "ER  - \n"
)

NBIB_TWO = (
    "PMID- 22333955\n"
    "OWN - NLM\n"
    "TI  - A randomized controlled trial on the effectiveness of a classification-based\n"
    "      system for subacute and chronic low back pain.\n"
    "AB  - STUDY DESIGN: Randomized controlled trial.\n"
    "FAU - Apeldoorn, Adri T\n"
    "AU  - Apeldoorn AT\n"
    "FAU - Ostelo, Raymond W\n"
    "DP  - 2012 Jul 15\n"
    "TA  - Spine (Phila Pa 1976)\n"
    "JT  - Spine\n"
    "LID - 10.1097/BRS.0b013e31824d9f2b [doi]\n"
    "\n"
    "PMID- 12381971\n"
    "TI  - Evaluation of a specific home exercise program for low back pain.\n"
    "AU  - Descarreaux M\n"
    "DP  - 2002 Oct\n"
    "TA  - J Manipulative Physiol Ther\n"
    "AID - 10.1067/mmt.2002.127078 [doi]\n"
)
