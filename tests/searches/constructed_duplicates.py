"""A constructed set of bibliographic records with known duplicates, for measuring de-duplication.

Synthetic replica — not the review's records: the titles are written for this test from the review's topic,
and each duplicate is a copy of a base record changed in one documented way. `truth` is the cluster each
record belongs to; every record of a cluster is the same publication.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOPICS = [
    "motor control exercise", "McKenzie method", "classification-based physiotherapy",
    "graded activity", "stabilisation training", "tailored home exercise", "Pilates",
    "stratified care", "cognitive functional therapy", "specific trunk exercise",
    "directional preference exercise", "movement system impairment treatment",
]
OUTCOMES = ["pain and disability", "disability and work absence", "pain intensity", "function and quality of life"]
SURNAMES = ["Smith", "Müller", "van Dillen", "O'Sullivan", "García", "Nguyen", "Kowalski", "Rossi", "Ford",
            "Saner", "Lehtola", "Petersen"]
#: Each variation: (name, function base_row -> duplicate row). All are true duplicates.
VARIATIONS = [
    "doi upper case with prefix", "title punctuation and case", "subtitle dropped", "doi missing",
    "author format", "epub year", "accents dropped", "pmid with leading zeros", "language note",
    "one-character typo", "year missing", "hyphenation", "doi missing and title case", "journal differs",
]


def _base(rng: np.random.Generator, i: int) -> dict[str, str]:
    topic, outcome = TOPICS[i % len(TOPICS)], OUTCOMES[(i // len(TOPICS)) % len(OUTCOMES)]
    return {
        "title": f"Effect of {topic} on {outcome} in adults with chronic non-specific low-back pain: "
                 f"a randomised controlled trial (cohort {i + 1})",
        "authors": f"{SURNAMES[i % len(SURNAMES)]} {'AB'[i % 2]}; Jones K; Lee M",
        "year": str(2005 + i % 17),
        "doi": f"10.1000/lbp.{1000 + i}",
        "pmid": str(20000000 + 37 * i),
    }


def _vary(row: dict[str, str], kind: str) -> dict[str, str]:
    out = dict(row)
    if kind == "doi upper case with prefix":
        out["doi"] = "https://doi.org/" + row["doi"].upper()
        out["pmid"] = ""
    elif kind == "title punctuation and case":
        out.update(title=row["title"].upper().replace(":", " -").replace("(", "").replace(")", "") + ".",
                   doi="", pmid="")
    elif kind == "subtitle dropped":
        out.update(title=row["title"].split(":")[0], doi="", pmid="")
    elif kind == "doi missing":
        out.update(doi="", pmid="")
    elif kind == "author format":
        surname, initial = row["authors"].split(";")[0].rsplit(" ", 1)
        out.update(authors=f"{surname}, {initial}.; Jones, K.; Lee, M.", doi="", pmid="")
    elif kind == "epub year":
        out.update(year=str(int(row["year"]) + 1), doi="", pmid="")
    elif kind == "accents dropped":
        out.update(authors=row["authors"].replace("ü", "u").replace("í", "i"), doi="", pmid="")
    elif kind == "pmid with leading zeros":
        out.update(pmid="0" + row["pmid"], doi="", title=row["title"].lower())
    elif kind == "language note":
        out.update(title=row["title"] + " [Article in German]", doi="", pmid="")
    elif kind == "one-character typo":
        out.update(title=row["title"].replace("randomised", "randomized"), doi="", pmid="")
    elif kind == "year missing":
        out.update(year="", doi="", pmid="")
    elif kind == "hyphenation":
        out.update(title=row["title"].replace("low-back", "low back").replace("non-specific", "nonspecific"),
                   doi="", pmid="")
    elif kind == "doi missing and title case":
        out.update(title=row["title"].title(), doi="", pmid="")
    elif kind == "journal differs":
        out.update(doi=row["doi"], pmid="")
    return out


def hard_negatives() -> list[dict[str, str]]:
    """Distinct publications that look alike: companion reports of one trial (with DOIs), a protocol and
    its results years apart, and two trials with the same short title by different authors."""
    trial = "Tailored exercise versus general exercise for low back pain with movement control impairment"
    return [
        {"title": f"{trial}: short-term results", "authors": "Saner J; Kool J", "year": "2015",
         "doi": "10.1000/mci.1", "pmid": ""},
        {"title": f"{trial}: one-year follow-up", "authors": "Saner J; Kool J", "year": "2015",
         "doi": "10.1000/mci.2", "pmid": ""},
        {"title": f"{trial}: 6-month outcomes", "authors": "Saner J; Kool J", "year": "2016",
         "doi": "10.1000/mci.3", "pmid": ""},
        {"title": f"{trial}: 12-month outcomes", "authors": "Saner J; Kool J", "year": "2016",
         "doi": "10.1000/mci.4", "pmid": ""},
        {"title": "Individualised physiotherapy for low back pain: protocol of a randomised trial",
         "authors": "Ford JJ", "year": "2011", "doi": "", "pmid": ""},
        {"title": "Individualised physiotherapy for low back pain: a randomised trial",
         "authors": "Ford JJ", "year": "2016", "doi": "", "pmid": ""},
        {"title": "Exercise therapy for chronic low back pain", "authors": "Hayden JA", "year": "2021",
         "doi": "", "pmid": ""},
        {"title": "Exercise therapy for chronic low back pain", "authors": "Searle A", "year": "2015",
         "doi": "", "pmid": ""},
    ]


def constructed_set(seed: int = 20220131) -> pd.DataFrame:
    """Records with columns record_id, title, authors, year, doi, pmid, truth (true cluster), variation.

    Each of the 14 variations is applied to two base records (28 duplicate pairs); 12 further base records
    stay single; the 8 hard negatives are each their own cluster. Row order is shuffled with `seed`."""
    rng = np.random.default_rng(seed)
    rows = []
    n_base = 2 * len(VARIATIONS) + 12
    for i in range(n_base):
        base = _base(rng, i)
        rows.append({**base, "truth": f"base{i}", "variation": "original"})
        if i < 2 * len(VARIATIONS):
            kind = VARIATIONS[i % len(VARIATIONS)]
            rows.append({**_vary(base, kind), "truth": f"base{i}", "variation": kind})
    for j, row in enumerate(hard_negatives()):
        rows.append({**row, "truth": f"negative{j}", "variation": "hard negative"})
    frame = pd.DataFrame(rows).iloc[rng.permutation(len(rows))].reset_index(drop=True)
    frame.insert(0, "record_id", [f"r{i:03d}" for i in range(len(frame))])
    return frame


def pair_set(ids: pd.Series, clusters: pd.Series) -> set[frozenset[str]]:
    """All unordered pairs of records that share a cluster."""
    pairs = set()
    for _, members in ids.groupby(clusters.to_numpy()):
        m = sorted(members)
        pairs.update(frozenset((a, b)) for k, a in enumerate(m) for b in m[k + 1:])
    return pairs
