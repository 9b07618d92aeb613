"""Blocking for de-duplication: the candidate pairs that could match, found without comparing every pair.

Comparing every title with every other grows with the square of the number of records (8,000 records of
one year took 13 s and 1.1 GB). The rules of `metaexercise.searches.dedupe` only merge two records whose
titles score at least 95 with `rapidfuzz.fuzz.ratio` and whose first authors score at least 90 (or, when an
author is missing, whose titles score at least 97). Both are bounds on an edit distance, so the pairs that
can match are found exactly — no pair the rules would merge is missed — by two filters:

- `similar_names`: names within the author threshold, by the symmetric deletion neighbourhood: two names
  at Indel distance d share a string obtained by deleting at most d characters from each (their longest
  common subsequence), so indexing every name by its deletion variants finds them all (Bocek, Hunt &
  Stiller 2007, "Fast similarity search in large dictionaries", the "FastSS" method). Records are then
  paired within the blocks of similar first authors (`pairs_in_blocks`).
- `similar_strings`: strings within a title threshold, by a partition (pigeonhole) filter (Li, Deng, Wang
  & Feng 2011, "PASS-JOIN: a partition-based method for similarity joins", PVLDB 5:253), used for records
  without a first author and for very large author blocks.

Every function returns candidate pairs only; the rules themselves (exact scores) are applied by the caller.
Memory is bounded by `PAIR_BUDGET` pairs at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

#: Width of the segments of the partition filter. Wider segments are rarer, but fewer fit in a title, which
#: leaves less choice of rare ones: 6 did best on synthetic titles (benchmarks/dedupe_scaling.py).
SEGMENT = 6
#: Segments indexed beyond the d_max + 1 the pigeonhole needs: with d_max + 1 + E of them at least 1 + E
#: survive, so a candidate must share 1 + E segments, which cuts chance look-alikes.
EXTRA_SEGMENTS = 1
#: Candidate pairs (or index hits) handled at once; bounds memory.
PAIR_BUDGET = 2_000_000
#: Names allowed this many deletions or fewer are indexed by their deletion variants; longer names (rare)
#: are compared directly with the names of compatible length.
MAX_DELETIONS = 3

_EMPTY = np.array([], dtype=np.int64)


def max_indel(lengths: np.ndarray, threshold: float) -> np.ndarray:
    """The largest Indel distance d at which a string of each length can still reach `threshold` with
    `fuzz.ratio` against a string of any length: ratio = 100 (1 - d / (m + n)) >= t and n <= m + d give
    d <= 2 (1 - t/100) m / (t/100). (The Indel distance counts insertions and deletions.)"""
    s = threshold / 100.0
    return np.floor(2.0 * (1.0 - s) * np.asarray(lengths) / s + 1e-6).astype(np.int64)


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo, hi): (number of the range, value) for every value of every range."""
    count = np.maximum(hi - lo, 0)
    which = np.repeat(np.arange(len(lo)), count)
    first = np.cumsum(count) - count
    return which, lo[which] + np.arange(int(count.sum()), dtype=np.int64) - first[which]


def _chunks(cost: np.ndarray, budget: int = PAIR_BUDGET) -> Iterator[slice]:
    """Consecutive slices of items whose summed cost stays within `budget` (an item costing more than the
    budget is a slice of its own)."""
    cumulative = np.cumsum(cost, dtype=np.float64)
    start = 0
    while start < len(cost):
        done = cumulative[start - 1] if start else 0.0
        stop = max(int(np.searchsorted(cumulative, done + budget, side="right")), start + 1)
        yield slice(start, stop)
        start = stop


def _substrings(texts: list[str], lengths: np.ndarray, which: np.ndarray, width: int, step: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code, owner, offset) of the `width`-character substrings of the texts numbered `which` that start at
    offsets 0, step, 2 step, ... The code is a 64-bit polynomial hash of the characters; two different
    substrings may rarely share one, which only adds a candidate (every candidate is scored afterwards)."""
    sym = np.frombuffer("".join(texts[k] for k in which).encode("utf-8", "replace"), dtype=np.uint8)
    size = np.fromiter((len(texts[k].encode("utf-8", "replace")) for k in which), dtype=np.int64,
                       count=len(which)) if len(which) else np.zeros(0, dtype=np.int64)
    if not np.array_equal(size, lengths[which]):  # offsets count characters; keep them exact
        sym = np.frombuffer("".join(texts[k] for k in which).encode("utf-32-le"), dtype=np.uint32)
        size = lengths[which]
    starts = np.cumsum(size) - size
    count = np.where(size >= width, (size - width) // step + 1, 0)
    k, nth = _expand(np.zeros(len(which), dtype=np.int64), count)
    offset = nth * step
    position = starts[k] + offset
    code = np.zeros(len(position), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for t in range(width):
            code = code * np.uint64(1_000_003) + sym[position + t].astype(np.uint64)
    return code.view(np.int64), which[k].astype(np.int32), offset.astype(np.int32)


def similar_strings(strings: list[str], rows: np.ndarray, threshold: float,
                    probes: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of pairs (i, j), i < j, of `rows` whose strings may reach `threshold` with `fuzz.ratio` and of
    which at least one is in `probes` (a boolean mask over all strings; default: every row). A superset of
    the pairs that reach the threshold: none is missed.

    Why. Let m be a string's length and d_max = `max_indel(m)` the largest Indel distance to any string it
    can match. Cut it into disjoint segments of SEGMENT characters. One insertion or deletion falls inside
    at most one segment, so d <= d_max edits leave at least k of any d_max + k segments intact, and such a
    segment appears in the other string shifted by at most d_max positions (also the most the lengths can
    differ). So each string is indexed by d_max + 1 + EXTRA_SEGMENTS of its segments (all it has, if fewer)
    — those the probing strings' own SEGMENT-character substrings hit least — and a pair is a candidate
    when the other string holds at least as many of them, at compatible offsets, as must survive. Strings
    too short for d_max + 1 segments are compared with each other directly, and always probe, so that a
    pair of a short and a long string is found from the long string's index (the partner of a string
    with d_max + 1 segments is at least SEGMENT long)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        return
    n = len(rows)
    texts = [strings[r] for r in rows]
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    tau = max_indel(lengths, threshold)
    indexed = lengths >= SEGMENT * (tau + 1)
    wanted = np.ones(n, dtype=bool) if probes is None else np.asarray(probes, dtype=bool)[rows]
    short = np.flatnonzero(~indexed)
    if len(short) > 1:
        step = max(1, PAIR_BUDGET // len(short))  # a score matrix of at most PAIR_BUDGET cells at a time
        for part in range(0, len(short), step):
            a_rows = short[part:part + step]
            score = process.cdist([texts[k] for k in a_rows], [texts[k] for k in short], scorer=fuzz.ratio,
                                  score_cutoff=threshold, dtype=np.float32)
            a, b = np.nonzero(score)
            a, b = a_rows[a], short[b]
            keep = (a < b) & (wanted[a] | wanted[b])
            if keep.any():
                yield rows[a[keep]], rows[b[keep]]
    look = np.flatnonzero(wanted | ~indexed)
    if indexed.any() and len(look):
        for i, j in _segment_join(texts, lengths, tau, np.flatnonzero(indexed), look, wanted, SEGMENT):
            yield rows[i], rows[j]


def _segment_join(texts: list[str], lengths: np.ndarray, tau: np.ndarray, members: np.ndarray,
                  look: np.ndarray, wanted: np.ndarray, width: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The candidate pairs of `similar_strings`: `members` are indexed by segments of `width` characters,
    `look` probe."""
    n = len(texts)
    code, owner, offset = _substrings(texts, lengths, look, width, 1)
    order = np.argsort(code, kind="stable")
    code, owner, offset = code[order], owner[order], offset[order]
    del order
    grid_code, grid_owner, grid_offset = _substrings(texts, lengths, members, width, width)
    hits = np.searchsorted(code, grid_code, side="right") - np.searchsorted(code, grid_code, side="left")
    order = np.lexsort((grid_offset, hits, grid_owner))
    segments = np.bincount(grid_owner, minlength=n)
    rank = np.arange(len(order)) - np.searchsorted(grid_owner[order], grid_owner[order])
    keep_n = np.minimum(segments, tau + 1 + EXTRA_SEGMENTS)  # of which at least keep_n - d_max survive
    chosen = order[rank < keep_n[grid_owner[order]]]
    chosen = chosen[hits[chosen] > 0]  # sorted by owner
    index_owner, index_offset = grid_owner[chosen].astype(np.int64), grid_offset[chosen]
    lo = np.searchsorted(code, grid_code[chosen], side="left")
    hi = lo + hits[chosen]
    need = keep_n - tau
    del grid_code, grid_owner, grid_offset, hits, order, rank, chosen
    # chunks end at an owner's last segment, so that its hits are counted together
    owner_end = np.r_[np.flatnonzero(index_owner[1:] != index_owner[:-1]) + 1, len(index_owner)]
    owner_cost = np.add.reduceat(hi - lo, np.r_[0, owner_end[:-1]]) if len(index_owner) else np.zeros(0)
    first = 0
    for part in _chunks(owner_cost):
        stop = int(owner_end[part.stop - 1])
        entries = np.arange(first, stop)
        first = stop
        which, at = _expand(lo[entries], hi[entries])
        entry = entries[which]
        s, r = index_owner[entry], owner[at].astype(np.int64)
        keep = ((r != s) & (np.abs(offset[at] - index_offset[entry]) <= tau[s])
                & (np.abs(lengths[r] - lengths[s]) <= tau[s]) & (wanted[r] | wanted[s]))
        s, r, entry = s[keep], r[keep], entry[keep]
        # distinct segments of s found in r: at least need[s] of them for a candidate
        key = s * n + r
        order = np.lexsort((entry, key))
        key, entry = key[order], entry[order]
        distinct = np.ones(len(key), dtype=bool)
        distinct[1:] = (key[1:] != key[:-1]) | (entry[1:] != entry[:-1])
        key = key[distinct]
        run = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
        directed, count = key[run], np.diff(np.r_[run, len(key)])
        directed = directed[count >= need[directed // n]]
        s, r = directed // n, directed % n
        pair = np.unique(np.minimum(r, s) * n + np.maximum(r, s))
        if len(pair):
            yield pair // n, pair % n


def similar_names(names: list[str], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (u, v), u < v, of distinct `names` scoring at least `threshold` with `fuzz.ratio` — all of
    them: by deletion variants for names allowed at most MAX_DELETIONS edits, else compared directly."""
    if len(names) < 2:
        return _EMPTY, _EMPTY
    lengths = np.fromiter((len(x) for x in names), dtype=np.int64, count=len(names))
    tau = max_indel(lengths, threshold)
    keys: list[str] = []
    owners: list[int] = []
    for k, name in enumerate(names):
        if tau[k] > MAX_DELETIONS:
            continue
        variants = {name}
        for d in range(1, int(tau[k]) + 1):
            variants.update("".join(c) for c in itertools.combinations(name, len(name) - d))
        keys.extend(variants)
        owners.extend([k] * len(variants))
    found_u, found_v = [], []
    if keys:
        code, _ = pd.factorize(pd.Series(keys, dtype=object))
        owner = np.asarray(owners, dtype=np.int64)
        order = np.lexsort((owner, code))
        code, owner = code[order], owner[order]
        run_end = np.r_[np.flatnonzero(code[1:] != code[:-1]) + 1, len(code)]
        end = np.repeat(run_end, np.diff(np.r_[0, run_end]))
        for part in _chunks(end - np.arange(len(code)) - 1):
            which, at = _expand(np.arange(len(code))[part] + 1, end[part])
            u, v = owner[part][which], owner[at]
            keep = u != v
            found_u.append(np.minimum(u[keep], v[keep]))
            found_v.append(np.maximum(u[keep], v[keep]))
    long = np.flatnonzero(tau > MAX_DELETIONS)
    for k in long:  # rare long names: every name of compatible length
        others = np.flatnonzero(np.abs(lengths - lengths[k]) <= tau[k])
        others = others[others != k]
        found_u.append(np.minimum(k, others))
        found_v.append(np.maximum(k, others))
    if not found_u:
        return _EMPTY, _EMPTY
    pair = np.unique(np.concatenate(found_u) * len(names) + np.concatenate(found_v))
    u, v = pair // len(names), pair % len(names)
    score = process.cpdist([names[x] for x in u], [names[x] for x in v], scorer=fuzz.ratio,
                           score_cutoff=threshold, dtype=np.float32) if len(u) else np.zeros(0)
    return u[score > 0], v[score > 0]


def pairs_in_blocks(block: np.ndarray, linked: tuple[np.ndarray, np.ndarray], n_blocks: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of row pairs (i, j), i < j, whose blocks are the same or `linked` (pairs of block numbers
    below `n_blocks`). `block` gives each row's block, -1 for none."""
    rows = np.flatnonzero(block >= 0)
    rows = rows[np.argsort(block[rows], kind="stable")]
    size = np.bincount(block[rows], minlength=n_blocks)
    first = np.cumsum(size) - size
    position = np.arange(len(rows), dtype=np.int64)
    end = (first + size)[block[rows]]
    # within a block: each member with the members after it
    for part in _chunks(end - position - 1):
        which, at = _expand(position[part] + 1, end[part])
        a, b = rows[part][which], rows[at]
        yield np.minimum(a, b), np.maximum(a, b)
    # across linked blocks: each member of the first with every member of the second
    u, v = linked
    member_of, member = _expand(first[u], first[u] + size[u])
    partner_size = size[v][member_of]
    for part in _chunks(partner_size):
        lo = first[v][member_of[part]]
        which, at = _expand(lo, lo + partner_size[part])
        a, b = rows[member[part][which]], rows[at]
        yield np.minimum(a, b), np.maximum(a, b)
