"""De-duplication at scale: blocking finds exactly the pairs that comparing every pair finds, and time and
memory grow about linearly (8,000 records against 1,000: loose ratio bounds, no absolute times). The
100,000-record measurements are in benchmarks/dedupe_scaling.py."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from constructed_duplicates import constructed_set
from rapidfuzz import fuzz, process
from synthetic_records import synthetic_records

from metaexercise.searches import blocking, dedupe


def _every_pair(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: every pair scored (the rules of step 2 without blocking), as before blocking."""
    n = len(keys)
    years = keys["year"].to_numpy(dtype=float)
    titles, mains = keys["title"].tolist(), keys["main"].tolist()
    has_sub = keys["has_sub"].to_numpy()
    main_ok = keys["main"].str.split().str.len().to_numpy() >= dedupe.MIN_MAIN_TITLE_WORDS
    empty = np.array([t == "" for t in titles])
    full = process.cdist(titles, titles, scorer=fuzz.ratio, score_cutoff=dedupe.TITLE_THRESHOLD)
    main = process.cdist(mains, mains, scorer=fuzz.ratio, score_cutoff=dedupe.TITLE_THRESHOLD)
    one_sub = (has_sub[:, None] != has_sub[None, :]) & main_ok[:, None] & main_ok[None, :]
    score = np.maximum(full, np.where(one_sub, main, 0))
    known = ~(np.isnan(years[:, None]) | np.isnan(years[None, :]))
    near = ~known | (np.abs(years[:, None] - years[None, :]) <= dedupe.YEAR_TOLERANCE)
    score = np.where(near & ~empty[:, None] & ~empty[None, :], score, 0)
    i, j = np.nonzero(np.triu(score, 1))
    order = np.lexsort((j, i))
    return i[order], j[order], score[i, j][order].astype(float) if n else np.array([])


def _same_as_every_pair(frame: pd.DataFrame, monkeypatch) -> int:
    blocked = dedupe.find_pairs(frame)
    with monkeypatch.context() as m:
        m.setattr(dedupe, "_fuzzy_candidates", _every_pair)
        reference = dedupe.find_pairs(frame)
    pdt.assert_frame_equal(blocked, reference)
    return len(reference)


@pytest.mark.parametrize("seed", [1, 2])
def test_blocking_finds_what_comparing_every_pair_finds(seed, monkeypatch):
    frame = synthetic_records(1500, seed=seed, years=(2022, 2023, 2024, 2025), duplicate_share=0.3,
                              missing_share=0.1)
    assert _same_as_every_pair(frame, monkeypatch) > 300
    assert _same_as_every_pair(constructed_set(), monkeypatch) == 29


def test_large_author_blocks_are_searched_by_title(monkeypatch):
    frame = synthetic_records(1200, seed=3, duplicate_share=0.3, missing_share=0.05)
    frame.loc[frame.index[:700], "authors"] = "Smith J"  # one large block of a single first author
    monkeypatch.setattr(dedupe, "LARGE_BLOCK", 50)
    assert _same_as_every_pair(frame, monkeypatch) > 100


def test_look_alike_titles_everywhere(monkeypatch):
    """A worst case: numbered titles that nearly all match each other (many true pairs)."""
    titles = [f"Tailored exercise trial number {i} in chronic low back pain" for i in range(400)]
    frame = pd.DataFrame({"record_id": [f"x{i}" for i in range(400)], "title": titles,
                          "authors": ["Smith J"] * 200 + [f"Author{i % 37}" for i in range(200)],
                          "year": ["2020"] * 400, "doi": [""] * 400, "pmid": [""] * 400})
    frame.loc[::7, "authors"] = ""
    assert _same_as_every_pair(frame, monkeypatch) > 1000
    monkeypatch.setattr(dedupe, "LARGE_BLOCK", 20)
    _same_as_every_pair(frame, monkeypatch)


def test_similar_names_are_all_found():
    rng = np.random.default_rng(5)
    letters = np.array(list("abcdeilmnorstu "))
    names = sorted({"".join(rng.choice(letters, int(rng.integers(1, 22)))).strip() or "x" for _ in range(700)})
    names += [n[:-1] for n in names[:60] if len(n) > 3] + [n + "e" for n in names[60:120]]
    names = sorted(set(names))
    u, v = blocking.similar_names(names, 90.0)
    score = process.cdist(names, names, scorer=fuzz.ratio, score_cutoff=90.0)
    ref_u, ref_v = np.nonzero(np.triu(score, 1))
    assert set(zip(u.tolist(), v.tolist(), strict=True)) == set(zip(ref_u.tolist(), ref_v.tolist(), strict=True))
    assert len(ref_u) > 50


@pytest.mark.parametrize("threshold", [95.0, 97.0])
def test_similar_strings_misses_nothing(threshold):
    rng = np.random.default_rng(int(threshold))
    words = ["back", "pain", "exercise", "trial", "lumbar", "motor", "control", "of", "a", "in", "the"]
    base = [" ".join(rng.choice(words, int(rng.integers(1, 16)))) for _ in range(300)]
    strings = list(base)
    for s in base[:200]:  # near copies: a few characters inserted, deleted or replaced
        t = list(s)
        for _ in range(int(rng.integers(0, 4))):
            k = int(rng.integers(0, len(t) + 1))
            op = rng.integers(0, 3)
            if op == 0 or not t:
                t.insert(k, "x")
            elif op == 1:
                del t[min(k, len(t) - 1)]
            else:
                t[min(k, len(t) - 1)] = "z"
        strings.append("".join(t))
    probes = rng.random(len(strings)) < 0.3
    rows = np.arange(len(strings))
    score = process.cdist(strings, strings, scorer=fuzz.ratio, score_cutoff=threshold)
    for mask in (None, probes):
        found = set()
        for i, j in blocking.similar_strings(strings, rows, threshold, mask):
            found |= set(zip(i.tolist(), j.tolist(), strict=True))
        ref_i, ref_j = np.nonzero(np.triu(score, 1))
        keep = np.ones(len(ref_i), bool) if mask is None else mask[ref_i] | mask[ref_j]
        assert set(zip(ref_i[keep].tolist(), ref_j[keep].tolist(), strict=True)) <= found
        assert len(ref_i[keep]) > 20


def _measure(frame: pd.DataFrame, repeats: int) -> tuple[float, int]:
    dedupe.deduplicate(frame.head(50))
    seconds = min(_timed(frame) for _ in range(repeats))
    tracemalloc.start()
    try:
        dedupe.deduplicate(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak


def _timed(frame: pd.DataFrame) -> float:
    """CPU seconds of the process (steadier than wall time when other jobs share the machine)."""
    t = time.process_time()
    dedupe.deduplicate(frame)
    return time.process_time() - t


def test_dedupe_grows_about_linearly():
    """8,000 records of one year against 1,000: comparing every pair would take 64 times the time and
    memory; blocking takes about 8 times (bounds loose: shared machines are noisy)."""
    small, large = synthetic_records(1000), synthetic_records(8000)
    t_small, m_small = _measure(small, repeats=3)
    t_large, m_large = _measure(large, repeats=2)
    print(f"dedupe 1,000 records: {t_small:.3f} s CPU, traced peak {m_small / 1e6:.1f} MB; "
          f"8,000: {t_large:.3f} s, {m_large / 1e6:.1f} MB; ratios x{t_large / t_small:.1f}, "
          f"x{m_large / m_small:.1f}")
    assert t_large / t_small < 20
    assert m_large / m_small < 20
