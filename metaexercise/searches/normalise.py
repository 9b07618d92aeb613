"""Normalisers for identifiers and titles, so that comparisons ignore case, punctuation, accents and the
many spellings databases use for the same DOI or PMID."""

from __future__ import annotations

import re
import unicodedata

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*|doi\s+)", re.IGNORECASE)
_DOI_IN_TEXT = re.compile(r"10\.\d{4,9}/\S+")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_SUBTITLE = re.compile(r"\s*(?::|\s[-–—]\s|\.\s)\s*")


def normalise_text(text: str) -> str:
    """Lower-case ASCII words separated by single spaces: accents dropped (NFKD), punctuation removed."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_WORD.sub(" ", ascii_text).strip()


def normalise_doi(doi: str) -> str:
    """A DOI in canonical form: lower-case (DOIs are case-insensitive, doi.org handbook §2.4), without the
    "https://doi.org/" or "doi:" prefix and without trailing punctuation; "" if it does not look like a DOI."""
    text = _DOI_PREFIX.sub("", (doi or "").strip())
    match = _DOI_IN_TEXT.search(text)
    return match.group(0).rstrip(".,;)]}").lower() if match else ""


def normalise_pmid(pmid: str) -> str:
    """A PubMed ID as digits without leading zeros ("PMID: 022333955" → "22333955"); "" if none."""
    digits = re.sub(r"^\s*(?:pmid:?\s*)", "", (pmid or "").strip(), flags=re.IGNORECASE)
    return digits.lstrip("0") if digits.isdigit() else ""


def normalise_title(title: str) -> str:
    """The title as `normalise_text` words, without a trailing "[Article in German]"-style bracket note."""
    return normalise_text(re.sub(r"\s*\[[^\]]*\]\s*\.?\s*$", "", title or ""))


def main_title(title: str) -> str:
    """The normalised title before its subtitle (the first ": ", " - " or ". "), or the whole title."""
    return normalise_text(_SUBTITLE.split(title or "", maxsplit=1)[0])
