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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from metaexercise.errors import SearchDataError
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
    filled = keys.loc[keys[column] != "", column]
    first = filled.groupby(filled, sort=False).transform(lambda s: s.index[0])
    linked = first[first != first.index]
    return [(int(a), int(b), column, 100.0) for b, a in linked.items()]


def _fuzzy_candidates(keys: pd.DataFrame) -> list[tuple[int, int, float]]:
    """Pairs (i < j) whose title score reaches TITLE_THRESHOLD, compared within year ± YEAR_TOLERANCE blocks
    (a record without a year is compared with every record)."""
    years = keys["year"].to_numpy()
    titles = keys["title"].tolist()
    mains = keys["main"].tolist()
    has_sub = keys["has_sub"].to_numpy()
    main_ok = keys["main"].str.split().str.len().to_numpy() >= MIN_MAIN_TITLE_WORDS
    found: dict[tuple[int, int], float] = {}
    blocks = [y for y in np.unique(years[~np.isnan(years)])] + [np.nan]
    for year in blocks:
        rows = np.flatnonzero(np.isnan(years)) if np.isnan(year) else np.flatnonzero(years == year)
        cols = np.flatnonzero(np.isnan(years) | (np.abs(years - year) <= YEAR_TOLERANCE)) if not np.isnan(
            year) else np.arange(len(keys))
        if len(rows) == 0 or len(cols) == 0:
            continue
        full = process.cdist([titles[i] for i in rows], [titles[j] for j in cols], scorer=fuzz.ratio,
                             score_cutoff=TITLE_THRESHOLD, workers=1)
        main = process.cdist([mains[i] for i in rows], [mains[j] for j in cols], scorer=fuzz.ratio,
                             score_cutoff=TITLE_THRESHOLD, workers=1)
        one_sub = (has_sub[rows][:, None] != has_sub[cols][None, :]) & main_ok[rows][:, None] & main_ok[cols][
            None, :]
        score = np.maximum(full, np.where(one_sub, main, 0))
        for r, c in zip(*np.nonzero(score), strict=True):
            i, j = int(rows[r]), int(cols[c])
            if i != j and titles[i] and titles[j]:
                pair = (min(i, j), max(i, j))
                found[pair] = max(found.get(pair, 0.0), float(score[r, c]))
    return [(i, j, s) for (i, j), s in sorted(found.items())]


def _judge(keys: pd.DataFrame, i: int, j: int, title_score: float) -> tuple[str, float]:
    """(reason, author score) for a fuzzy candidate: "fuzzy", "doi conflict", "pmid conflict" or ""."""
    a, b = keys.iloc[i], keys.iloc[j]
    author_score = fuzz.ratio(a["author"], b["author"]) if a["author"] and b["author"] else np.nan
    year_known = not (np.isnan(a["year"]) or np.isnan(b["year"]))
    if year_known and abs(a["year"] - b["year"]) > YEAR_TOLERANCE:
        return "", author_score
    if not np.isnan(author_score) and author_score < AUTHOR_THRESHOLD:
        return "", author_score
    if (not year_known or np.isnan(author_score)) and title_score < TITLE_ALONE_THRESHOLD:
        return "", author_score
    for column in ("doi", "pmid"):
        if a[column] and b[column] and a[column] != b[column]:
            return f"{column} conflict", author_score
    return "fuzzy", author_score


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
    for i, j, title_score in _fuzzy_candidates(keys):
        if (i, j) in linked:
            continue
        reason, author_score = _judge(keys, i, j, title_score)
        if reason:
            rows.append((i, j, reason, title_score, reason == "fuzzy", title_score, author_score))
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
