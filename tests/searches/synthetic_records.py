"""Synthetic bibliographic records at scale, for measuring how de-duplication grows with the number of records.

Synthetic replica — not real publications: titles are drawn from a small vocabulary of the review's topic
(frequent words such as "exercise", "low back pain") mixed with a large vocabulary of made-up words drawn
with Zipf-like frequencies, so that, as in real searches, titles share many words but rarely a whole
sentence. A share of records are duplicates of others, changed in one of the ways databases differ (case and
punctuation, a one-letter typo, a dropped subtitle, an e-pub year, a missing DOI, another author format).
`truth` is the cluster of each record. By default every record has the same year: the worst case for
blocking by year, and the case of the hardening issue ("8,000 records of one year").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOPIC_WORDS = (
    "exercise therapy individualised tailored personalised stratified low back pain chronic non-specific "
    "randomised controlled trial adults physiotherapy motor control stabilisation graded activity McKenzie "
    "Pilates yoga disability function intensity outcomes effect effectiveness versus general home based "
    "supervised programme primary care cognitive functional classification directional preference trunk "
    "muscle training walking education self-management cost utility pragmatic feasibility pilot study "
    "patients women older workers sciatica follow-up months weeks long-term short-term"
).split()
SUBTITLES = (
    "a randomised controlled trial", "a pragmatic randomised trial", "protocol of a randomised trial",
    "a pilot study", "secondary analysis of a randomised trial", "a cost-effectiveness analysis",
    "12-month follow-up of a randomised trial", "a systematic review",
)
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "dra", "gen", "tor", "bel", "qui", "sa",
              "fen", "ox", "ly", "mar", "zu", "cor", "ple", "ith", "ven", "stro", "ab", "il", "ur")


def _made_up_words(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 5))
        words.add("".join(rng.choice(_SYLLABLES, k)))
    return sorted(words)


def _vary(row: dict[str, object], kind: str, rng: np.random.Generator) -> dict[str, object]:
    out = dict(row)
    title = str(row["title"])
    if kind == "case and punctuation":
        out["title"] = title.upper().replace(":", " -") + "."
    elif kind == "typo":
        k = int(rng.integers(0, len(title)))
        out["title"] = title[:k] + ("x" if title[k] != "x" else "y") + title[k + 1:]
    elif kind == "subtitle dropped" and ":" in title and len(title.split(":")[0].split()) >= 4:
        out["title"] = title.split(":")[0]
    elif kind == "epub year" and row["year"]:
        out["year"] = str(int(str(row["year"])) + 1)
    elif kind == "author format" and row["authors"]:
        surname, initial = str(row["authors"]).split(";")[0].rsplit(" ", 1)
        out["authors"] = f"{surname}, {initial}.; Other, A."
    elif kind == "author misspelt" and row["authors"]:
        surname, initial = str(row["authors"]).split(";")[0].rsplit(" ", 1)
        out["authors"] = f"{surname[:-1] + surname[-1] * 2} {initial}"
    elif kind == "author missing":
        out["authors"] = ""
    elif kind == "year missing":
        out["year"] = ""
    out["doi"] = row["doi"] if kind == "same doi" else ""
    out["pmid"] = ""
    return out


VARIATIONS = ("case and punctuation", "typo", "subtitle dropped", "epub year", "author format", "same doi",
              "author misspelt", "author missing", "year missing")


def synthetic_records(n: int, *, seed: int = 20261101, years: tuple[int, ...] = (2024,),
                      duplicate_share: float = 0.1, missing_share: float = 0.02) -> pd.DataFrame:
    """`n` records (record_id, title, authors, year, doi, pmid, truth), about `duplicate_share` of them
    duplicates of another record; years drawn from `years`; about `missing_share` of the original records
    without authors and as many without a year."""
    rng = np.random.default_rng(seed)
    vocabulary = [str(w) for w in rng.permutation(_made_up_words(rng, 6000))]
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1) ** 0.9
    zipf /= zipf.sum()
    surnames = [w.capitalize() for w in _made_up_words(np.random.default_rng(seed + 1), 4000)]
    n_dup = int(round(n * duplicate_share))
    n_base = n - n_dup
    lengths = rng.integers(6, 15, n_base)
    total = int(lengths.sum())
    topic = rng.random(total) < 0.45
    topic_words = rng.integers(0, len(TOPIC_WORDS), total)
    other_words = rng.choice(len(vocabulary), size=total, p=zipf)
    subtitle = rng.random(n_base) < 0.35
    subtitle_kind = rng.integers(0, len(SUBTITLES), n_base)
    first_authors = rng.integers(0, len(surnames), n_base)
    second_authors = rng.integers(0, len(surnames), n_base)
    year_of = rng.choice(np.asarray(years), n_base)
    has_doi = rng.random(n_base) < 0.6
    has_pmid = rng.random(n_base) < 0.4
    no_author = rng.random(n_base) < missing_share
    no_year = rng.random(n_base) < missing_share
    rows: list[dict[str, object]] = []
    at = 0
    for i in range(n_base):
        words = [TOPIC_WORDS[topic_words[k]] if topic[k] else vocabulary[other_words[k]]
                 for k in range(at, at + int(lengths[i]))]
        at += int(lengths[i])
        title = " ".join(words).capitalize()
        if subtitle[i]:
            title += ": " + SUBTITLES[subtitle_kind[i]]
        rows.append({
            "title": title,
            "authors": "" if no_author[i] else
                       f"{surnames[first_authors[i]]} {'ABCDEFGHJK'[i % 10]}; {surnames[second_authors[i]]} K",
            "year": "" if no_year[i] else str(int(year_of[i])),
            "doi": f"10.{1000 + i % 9000}/syn.{i}" if has_doi[i] else "",
            "pmid": str(30000000 + i) if has_pmid[i] else "",
            "truth": f"t{i}",
        })
    for d in range(n_dup):
        base = rows[int(rng.integers(n_base))]
        rows.append(_vary(base, VARIATIONS[d % len(VARIATIONS)], rng))
    frame = pd.DataFrame(rows).iloc[rng.permutation(len(rows))].reset_index(drop=True)
    frame.insert(0, "record_id", [f"s{i}" for i in range(len(frame))])
    return frame
