"""New studies an update includes, as rows to start data extraction (`searches/new_studies.csv`).

One row per included study (the screening log's study_id groups its reports; a report without one is its
own study) with a proposed extraction id in `extraction/studies.csv` style (first author's surname and
year, e.g. "apeldoorn2012"; a letter is appended when the id is taken), the first author and year of the
earliest report, and every report's record id, title and DOI/PMID link. Entering the studies into
`extraction/` stays a reviewer's step (`metaexercise template`, then `metaexercise import`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from metaexercise.searches.normalise import normalise_doi, normalise_pmid, normalise_text

COLUMNS = ("extraction_id", "study_id", "first_author", "year", "reports", "titles", "source")


def _surname(authors: str) -> str:
    first = re.split(r"[;,]", authors or "", maxsplit=1)[0].strip().split()
    while len(first) > 1 and re.fullmatch(r"(?:[A-Z]\.?-?){1,4}", first[-1]):
        first.pop()
    return " ".join(first)


def _link(doi: str, pmid: str) -> str:
    if normalise_doi(doi):
        return f"https://doi.org/{normalise_doi(doi)}"
    return f"https://pubmed.ncbi.nlm.nih.gov/{normalise_pmid(pmid)}/" if normalise_pmid(pmid) else ""


def new_studies(log: pd.DataFrame, records: pd.DataFrame, taken: Iterable[str] = ()) -> pd.DataFrame:
    """Included studies of the screening `log`, with bibliographic details from `records` (records-table
    rows); `taken` are extraction ids already in use (e.g. extraction/studies.csv's study_id)."""
    included = log[log["ft_decision"] == "include"].copy()
    included["study"] = included["study_id"].where(included["study_id"] != "", included["record_id"])
    details = records.set_index("record_id")
    used = set(taken)
    rows = []
    for study, reports in included.groupby("study", sort=False):
        info = details.reindex(reports["record_id"]).fillna("")
        info = info.assign(_year=pd.to_numeric(info["year"], errors="coerce")).sort_values("_year", kind="stable")
        first = info.iloc[0]
        surname = _surname(first["authors"])
        base = normalise_text(surname).replace(" ", "") + str(first["year"])
        extraction_id = base
        for suffix in "bcdefghijklmnopqrstuvwxyz":
            if extraction_id not in used:
                break
            extraction_id = base + suffix
        used.add(extraction_id)
        rows.append({
            "extraction_id": extraction_id,
            "study_id": study,
            "first_author": surname,
            "year": first["year"],
            "reports": "; ".join(info.index),
            "titles": " | ".join(info["title"]),
            "source": "; ".join(x for x in (_link(d, p) for d, p in zip(info["doi"], info["pmid"], strict=True)) if x),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))
