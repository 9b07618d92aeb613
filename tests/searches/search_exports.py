"""Small hand-written exports shared by the search tests, and a file hash for "inputs never modified" checks.

The MEDLINE records carry the bibliographic details of the review's references 2 (Apeldoorn 2012) and 8
(Descarreaux 2002) as its reference list gives them (title, PMID, DOI, year, journal), in PubMed's MEDLINE
layout with fields abbreviated; the RIS records are invented (synthetic, not real publications)."""

from __future__ import annotations

import hashlib
from pathlib import Path


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
