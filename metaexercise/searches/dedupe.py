"""De-duplication within and across searches, and against an earlier edition's screened records.

Rules, applied in this order (all thresholds are rapidfuzz scores on a 0–100 scale):

1. **Exact identifiers.** Records whose DOIs agree after `normalise_doi` (case, "https://doi.org/" and "doi:"
   prefixes, trailing punctuation ignored), or whose PMIDs agree after `normalise_pmid`, are duplicates
   (score 100).
2. **Fuzzy bibliographic match.** Two records are duplicates when their normalised titles score at least
   `TITLE_THRESHOLD` (95) with `rapidfuzz.fuzz.ratio` (normalised Indel similarity), their years differ by at
   most `YEAR_TOLERANCE` (1: an e-pub year and a print year) and their first authors' surnames score at least
   `AUTHOR_THRESHOLD` (90). When year or first author is missing on either side the title must score at
   least `TITLE_ALONE_THRESHOLD` (97). A title without a subtitle is also compared with the other title's
   part before its subtitle (": ", " - ", ". "), provided that part has at least `MIN_MAIN_TITLE_WORDS` (4)
   words, so "Title" and "Title: a randomised trial" match; two different subtitles are compared in full.
   A fuzzy match is vetoed when both records carry DOIs (or both PMIDs) and they differ: companion papers
   of one trial (6- and 12-month reports) often share title, authors and year.
3. **Manual overrides** (`searches/overrides.csv`: record_a, record_b, decision ∈ {same, different}, note)
   win: "same" merges a pair, "different" removes any automatic link between the two.

Duplicates form clusters (connected components, `scipy.sparse.csgraph`). A cluster that holds a record of
the earlier edition is removed whole ("previously screened"). Otherwise one record is kept: one already in
the screening log if any, else the one with the most identifiers (DOI, PMID, year, authors), else the first
imported. On the constructed set in `tests/searches/constructed_duplicates.py` (76 records, 28 true
duplicate pairs over 14 kinds of variation, 8 look-alike non-duplicates) these thresholds give pairwise
precision 1.0 and recall 1.0. Known limit: companion reports without DOIs/PMIDs whose titles differ only
in a number ("6-month" vs "12-month outcomes", title score 98.6) are merged; undo with a "different"
override. The Bramer et al. (2016, J Med Libr Assoc 104:240,
doi:10.3163/1536-5050.104.3.014) and ASySD (Hair et al. 2023, BMC Biol 21:189) rules use the same fields.

Scale. Step 2 scores only candidate pairs (`_candidate_chunks`, `metaexercise.searches.blocking`): records
whose first authors score at least AUTHOR_THRESHOLD, and, where a first author is missing, titles that
share segments at positions where TITLE_ALONE_THRESHOLD can still be reached. Both filters follow from
the thresholds, so the pairs linked are exactly those that scoring every pair would link (tested against
that in tests/searches/test_search_scaling.py), in bounded memory. Synthetic records of one year
(benchmarks/dedupe_scaling.py, 2 shared cores): 1,000 in 0.04 s, 8,000 in 0.27 s (resident memory +19 MB),
100,000 in 4.7 s (+208 MB); scoring every pair took 0.33 s, 11 s (+1.05 GB) and could not run at 100,000
(one score matrix alone needs 40 GB; spread over 31 years it took 625 s and +5.3 GB). Time grows faster
than linearly when many records share one first author, or lack one, and their titles share many words:
100,000 records all without a first author took 44 s of CPU time, all with the same one 155 s, in under
0.6 GB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from metaexercise.errors import SearchDataError
from metaexercise.searches import blocking
from metaexercise.searches.normalise import main_title, normalise_doi, normalise_pmid, normalise_title
from metaexercise.searches.records import first_author_surname

TITLE_THRESHOLD = 95.0
TITLE_ALONE_THRESHOLD = 97.0
AUTHOR_THRESHOLD = 90.0
YEAR_TOLERANCE = 1
MIN_MAIN_TITLE_WORDS = 4

PAIR_COLUMNS = ("record_a", "record_b", "reason", "score", "merged", "title_score", "author_score")
STATUS = ("unique", "kept", "duplicate", "previously screened")


@dataclass(frozen=True, slots=True)
class Deduplication:
    """The outcome of de-duplication.

    `records`: one row per imported record — record_id, cluster, status (one of `STATUS`), duplicate_of (the
    kept record, or "previous:<row>" for the earlier edition's row in previous_edition.csv).
    `pairs`: every linked pair — record_a, record_b, reason (doi, pmid, fuzzy, override; or "doi conflict",
    "pmid conflict", "override: different" for pairs not merged), score, merged, title_score, author_score.
    """

    records: pd.DataFrame
    pairs: pd.DataFrame

    @property
    def kept(self) -> list[str]:
        """Record ids that go on to screening, in import order."""
        mask = self.records["status"].isin(["unique", "kept"])
        return self.records.loc[mask, "record_id"].tolist()

    @property
    def n_duplicates(self) -> int:
        return int((self.records["status"] == "duplicate").sum())

    @property
    def n_previously_screened(self) -> int:
        return int((self.records["status"] == "previously screened").sum())

    def summary(self) -> str:
        merged = self.pairs[self.pairs["merged"]]
        by_reason = merged["reason"].value_counts().to_dict()
        return (
            f"{len(self.records)} records: {len(self.kept)} unique, {self.n_duplicates} duplicates removed, "
            f"{self.n_previously_screened} screened in an earlier edition; merged pairs by reason: "
            + (", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) or "none")
        )

    def to_frame(self) -> pd.DataFrame:
        return self.records.copy()


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["doi"] = frame["doi"].map(normalise_doi)
    out["pmid"] = frame["pmid"].map(normalise_pmid)
    out["title"] = frame["title"].map(normalise_title)
    out["main"] = frame["title"].map(main_title)
    out["has_sub"] = out["main"] != out["title"]
    out["author"] = frame["authors"].map(first_author_surname)
    out["year"] = pd.to_numeric(frame["year"], errors="coerce")
    return out


def _exact_pairs(keys: pd.DataFrame, column: str) -> list[tuple[int, int, str, float]]:
    """Rows sharing a normalised identifier, each linked to the first row with that value."""
    filled = keys.loc[keys[column] != "", column]
    first = filled.index.to_series().groupby(filled.to_numpy(), sort=False).transform("min")
    linked = first[first != first.index]
    return [(int(a), int(b), column, 100.0) for b, a in linked.items()]


#: Blocks of similar first authors with more records than this are searched by title
#: (`blocking.similar_strings`) instead of comparing every pair of records in them.
LARGE_BLOCK = 1500
#: Candidate pairs scored at once.
SCORE_CHUNK = 500_000


def _candidate_chunks(keys: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of pairs (i < j) that could be fuzzy matches; every pair the rules of step 2 would link is
    among them (see `metaexercise.searches.blocking`):

    - both first authors known: the records of blocks of first authors scoring at least AUTHOR_THRESHOLD
      (every pair within a block and across two linked blocks; a block larger than LARGE_BLOCK, and the
      blocks linked to it, are searched by title at TITLE_THRESHOLD instead);
    - a first author missing: titles (or main titles) that may score at least TITLE_ALONE_THRESHOLD."""
    n = len(keys)
    titles = keys["title"].tolist()
    mains = keys["main"].tolist()
    filled = keys["title"].to_numpy(dtype=object) != ""
    main_ok = filled & (keys["main"].str.split().str.len().to_numpy() >= MIN_MAIN_TITLE_WORDS)
    author = keys["author"].to_numpy(dtype=object)
    known = filled & (author != "")
    block, names = pd.factorize(pd.Series(np.where(known, author, None), dtype=object))
    u, v = blocking.similar_names([str(x) for x in names], AUTHOR_THRESHOLD)
    size = np.bincount(block[block >= 0], minlength=len(names))
    large = size > LARGE_BLOCK
    to_large = large[u] | large[v]
    searched = large.copy()
    searched[u[to_large]] = True
    searched[v[to_large]] = True
    in_large = np.zeros(n, dtype=bool)
    by_title = np.zeros(n, dtype=bool)
    in_large[block >= 0] = large[block[block >= 0]]
    by_title[block >= 0] = searched[block[block >= 0]]
    yield from blocking.pairs_in_blocks(np.where(in_large, -1, block), (u[~to_large], v[~to_large]), len(names))
    if by_title.any():
        yield from blocking.similar_strings(titles, np.flatnonzero(by_title), TITLE_THRESHOLD)
        yield from blocking.similar_strings(mains, np.flatnonzero(by_title & main_ok), TITLE_THRESHOLD)
    alone = filled & ~known
    if alone.any():
        yield from blocking.similar_strings(titles, np.flatnonzero(filled), TITLE_ALONE_THRESHOLD, alone)
        yield from blocking.similar_strings(mains, np.flatnonzero(main_ok), TITLE_ALONE_THRESHOLD, alone)


def _fuzzy_candidates(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) whose title score reaches TITLE_THRESHOLD and whose years differ by at most
    YEAR_TOLERANCE (or either year is missing), among the candidates of `_candidate_chunks`: arrays i, j,
    score, sorted by (i, j).

    The score is `fuzz.ratio` of the normalised titles or, when exactly one of the two has a subtitle and
    both main titles have at least MIN_MAIN_TITLE_WORDS words, of the main titles, whichever is higher."""
    years = keys["year"].to_numpy(dtype=float)
    titles = keys["title"].to_numpy(dtype=object)
    mains = keys["main"].to_numpy(dtype=object)
    has_sub = keys["has_sub"].to_numpy(dtype=bool)
    main_ok = keys["main"].str.split().str.len().to_numpy() >= MIN_MAIN_TITLE_WORDS
    title_len = keys["title"].str.len().to_numpy(dtype=float)
    main_len = keys["main"].str.len().to_numpy(dtype=float)
    slack = 1.0 - TITLE_THRESHOLD / 100.0
    found_i, found_j, found_s = [], [], []
    for ci, cj in _candidate_chunks(keys):
        for start in range(0, len(ci), SCORE_CHUNK):
            i, j = ci[start:start + SCORE_CHUNK], cj[start:start + SCORE_CHUNK]
            known = ~(np.isnan(years[i]) | np.isnan(years[j]))
            sub = (has_sub[i] != has_sub[j]) & main_ok[i] & main_ok[j]
            # a score of t needs lengths within (1 - t/100)(m + n) of each other
            full_fits = np.abs(title_len[i] - title_len[j]) <= slack * (title_len[i] + title_len[j]) + 1e-9
            main_fits = sub & (np.abs(main_len[i] - main_len[j]) <= slack * (main_len[i] + main_len[j]) + 1e-9)
            keep = (~known | (np.abs(years[i] - years[j]) <= YEAR_TOLERANCE)) & (full_fits | main_fits)
            i, j, full_fits, main_fits = i[keep], j[keep], full_fits[keep], main_fits[keep]
            score = np.zeros(len(i))
            if full_fits.any():
                score[full_fits] = process.cpdist(list(titles[i[full_fits]]), list(titles[j[full_fits]]),
                                                  scorer=fuzz.ratio, score_cutoff=TITLE_THRESHOLD,
                                                  dtype=np.float64)
            if main_fits.any():
                main = process.cpdist(list(mains[i[main_fits]]), list(mains[j[main_fits]]), scorer=fuzz.ratio,
                                      score_cutoff=TITLE_THRESHOLD, dtype=np.float64)
                score[main_fits] = np.maximum(score[main_fits], main)
            hit = score > 0
            found_i.append(i[hit])
            found_j.append(j[hit])
            found_s.append(score[hit])
    if not found_i:
        return np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=float)
    i, j, score = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    code = i.astype(np.int64) * len(keys) + j
    code, first = np.unique(code, return_index=True)  # a pair found twice has the same score
    return code // len(keys), code % len(keys), score[first].astype(float)


def _judge(keys: pd.DataFrame, i: np.ndarray, j: np.ndarray, title_score: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(reason, author score) for each fuzzy candidate: "fuzzy", "doi conflict", "pmid conflict" or ""."""
    author = keys["author"].to_numpy(dtype=object)
    known_author = (author[i] != "") & (author[j] != "")
    author_score = np.full(len(i), np.nan)
    if known_author.any():
        author_score[known_author] = process.cpdist(list(author[i][known_author]), list(author[j][known_author]),
                                                    scorer=fuzz.ratio)
    years = keys["year"].to_numpy(dtype=float)
    known_year = ~(np.isnan(years[i]) | np.isnan(years[j]))
    year_ok = ~known_year | (np.abs(years[i] - years[j]) <= YEAR_TOLERANCE)
    author_ok = ~known_author | (author_score >= AUTHOR_THRESHOLD)
    strict_ok = (known_year & known_author) | (title_score >= TITLE_ALONE_THRESHOLD)
    match = year_ok & author_ok & strict_ok
    reason = np.where(match, "fuzzy", "").astype(object)
    for column in ("pmid", "doi"):  # DOI conflict named first when both conflict
        values = keys[column].to_numpy(dtype=object)
        conflict = match & (values[i] != "") & (values[j] != "") & (values[i] != values[j])
        reason[conflict] = f"{column} conflict"
    return reason, author_score


def find_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Every automatically linked pair of rows of `frame` (columns record_id, title, authors, year, doi,
    pmid), as `PAIR_COLUMNS` with record ids."""
    keys = _keys(frame.reset_index(drop=True))
    rows: list[tuple] = []
    linked: set[tuple[int, int]] = set()
    for column in ("doi", "pmid"):
        for a, b, reason, score in _exact_pairs(keys, column):
            pair = (min(a, b), max(a, b))
            if pair not in linked:
                linked.add(pair)
                rows.append((*pair, reason, score, True, np.nan, np.nan))
    i, j, title_score = _fuzzy_candidates(keys)
    if len(i):
        codes = i.astype(np.int64) * len(keys) + j
        fresh = ~np.isin(codes, [a * len(keys) + b for a, b in linked])
        i, j, title_score = i[fresh], j[fresh], title_score[fresh]
        reason, author_score = _judge(keys, i, j, title_score)
        hit = reason != ""
        rows.extend(zip(i[hit].tolist(), j[hit].tolist(), reason[hit].tolist(), title_score[hit].tolist(),
                        (reason[hit] == "fuzzy").tolist(), title_score[hit].tolist(), author_score[hit].tolist(),
                        strict=True))
    pairs = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    ids = frame["record_id"].to_numpy()
    pairs["record_a"] = ids[pairs["record_a"].to_numpy(dtype=int)] if len(pairs) else pairs["record_a"]
    pairs["record_b"] = ids[pairs["record_b"].to_numpy(dtype=int)] if len(pairs) else pairs["record_b"]
    pairs["merged"] = pairs["merged"].astype(bool)
    return pairs


def apply_overrides(pairs: pd.DataFrame, overrides: pd.DataFrame, known_ids: Iterable[str],
                    source: str = "overrides.csv") -> pd.DataFrame:
    """Pairs with the manual decisions applied: "same" adds a merged pair, "different" un-merges one.

    Raises SearchDataError naming the overrides file, row and column for an unknown record id or
    decision."""
    known = set(known_ids)
    pairs = pairs.copy()
    for row_number, row in enumerate(overrides.itertuples(index=False), start=2):
        decision = str(row.decision).strip().lower()
        if decision not in ("same", "different"):
            raise SearchDataError(f"{source} row {row_number}, column decision: {row.decision!r} is not "
                                  "'same' or 'different'")
        for column in ("record_a", "record_b"):
            if getattr(row, column) not in known:
                raise SearchDataError(f"{source} row {row_number}, column {column}: no imported record "
                                      f"{getattr(row, column)!r}")
        a, b = row.record_a, row.record_b
        match = ((pairs["record_a"] == a) & (pairs["record_b"] == b)) | (
            (pairs["record_a"] == b) & (pairs["record_b"] == a))
        pairs = pairs[~match]
        reason = "override" if decision == "same" else "override: different"
        pairs = pd.concat([pairs, pd.DataFrame([[a, b, reason, 100.0, decision == "same", np.nan, np.nan]],
                                               columns=list(PAIR_COLUMNS))], ignore_index=True)
    pairs["merged"] = pairs["merged"].astype(bool)
    return pairs.reset_index(drop=True)


def deduplicate(
    records: pd.DataFrame,
    *,
    previous: pd.DataFrame | None = None,
    overrides: pd.DataFrame | None = None,
    prefer: Iterable[str] = (),
) -> Deduplication:
    """De-duplicate `records` (record_id, title, authors, year, doi, pmid) among themselves and against
    `previous` (an earlier edition's screened records: title, authors, year, doi, pmid), applying
    `overrides` (record_a, record_b, decision). Records in `prefer` (already screened in this update) are
    kept in preference. See the module docstring for the rules."""
    records = records.reset_index(drop=True)
    previous = previous if previous is not None else pd.DataFrame(columns=["title", "authors", "year", "doi",
                                                                          "pmid"])
    prev = previous.reset_index(drop=True).assign(record_id=[f"previous:{i + 2}" for i in range(len(previous))])
    cols = ["record_id", "title", "authors", "year", "doi", "pmid"]
    everything = pd.concat([records[cols], prev[cols]], ignore_index=True)
    pairs = find_pairs(everything)
    is_prev = pairs["record_a"].str.startswith("previous:") & pairs["record_b"].str.startswith("previous:")
    pairs = pairs[~is_prev].reset_index(drop=True)  # the earlier edition's own duplicates are its business
    if overrides is not None and len(overrides):
        pairs = apply_overrides(pairs, overrides, everything["record_id"])
    index = pd.Series(np.arange(len(everything)), index=everything["record_id"].to_numpy())
    merged = pairs[pairs["merged"]]
    a = index[merged["record_a"]].to_numpy()
    b = index[merged["record_b"]].to_numpy()
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(everything),) * 2)
    _, cluster = connected_components(graph, directed=False)
    _check_different(pairs, index, cluster)
    return Deduplication(_statuses(records, everything, cluster, set(prefer)), pairs)


def _check_different(pairs: pd.DataFrame, index: pd.Series, cluster: np.ndarray) -> None:
    apart = pairs[pairs["reason"] == "override: different"]
    for a, b in zip(apart["record_a"], apart["record_b"], strict=True):
        if cluster[index[a]] == cluster[index[b]]:
            raise SearchDataError(
                f"overrides.csv: {a} and {b} are marked 'different' but other links still join them; "
                "mark the linking pairs (see duplicates.csv) 'different' too"
            )


def _statuses(records: pd.DataFrame, everything: pd.DataFrame, cluster: np.ndarray, prefer: set[str]
              ) -> pd.DataFrame:
    n = len(records)
    ids = everything["record_id"].to_numpy()
    filled = sum((records[c].astype(str).str.strip() != "").astype(int) for c in ("doi", "pmid", "year",
                                                                                 "authors"))
    rank = pd.DataFrame({
        "cluster": cluster[:n],
        "preferred": records["record_id"].isin(prefer).to_numpy(),
        "filled": filled.to_numpy(),
        "order": np.arange(n),
    })
    best = rank.sort_values(["cluster", "preferred", "filled", "order"], ascending=[True, False, False, True])
    keeper = best.drop_duplicates("cluster").set_index("cluster")["order"]
    previous_of = pd.Series(ids[n:], index=cluster[n:])
    previous_of = previous_of[~previous_of.index.duplicated()]
    out = pd.DataFrame({"record_id": records["record_id"].to_numpy(), "cluster": cluster[:n]})
    size = out.groupby("cluster")["record_id"].transform("size").to_numpy()
    keep_id = ids[keeper.reindex(out["cluster"]).to_numpy()]
    in_previous = out["cluster"].isin(previous_of.index).to_numpy()
    status = np.where(size == 1, "unique", np.where(keep_id == out["record_id"].to_numpy(), "kept", "duplicate"))
    status = np.where(in_previous, "previously screened", status)
    out["status"] = status
    out["duplicate_of"] = np.where(
        in_previous, previous_of.reindex(out["cluster"]).fillna("").to_numpy(),
        np.where(status == "duplicate", keep_id, ""),
    )
    return out
