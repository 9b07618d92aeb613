"""Loading the metafor fixtures (tests/reference/*.json, written by tests/reference/make_reference.R) and
comparing our numbers with them, with messages that name data set, model, quantity, ours and metafor's."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

from metaexercise import Control

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"

#: The convergence control the fixtures were made with (make_reference.R: threshold = tol = 1e-12).
CONTROL = Control(threshold=1e-12, maxiter=10000, tol=1e-12)

RTOL = 1e-6  # the engine issue's acceptance bar
RTOL_INFLUENCE = 1e-5
ATOL = 1e-10  # floor for values that are (numerically) zero


@cache
def fixture(name: str) -> dict:
    """One fixture file, parsed (``Infinity`` is read by Python's json module)."""
    return json.loads((REFERENCE_DIR / f"{name}.json").read_text())


def as_array(x) -> np.ndarray:
    """JSON value -> float array, with null (metafor's NA) as NaN."""
    if x is None:
        return np.array(np.nan)
    if isinstance(x, list):
        return np.array([np.nan if v is None else v for v in _flatten(x)], dtype=float).reshape(np.shape(x))
    return np.array(float(x))


def _flatten(x):
    for v in x:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


def mismatch(label: str, ours, ref, rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """None when ``ours`` equals metafor's ``ref`` to |ours − ref| ≤ atol + rtol·|ref| (NaN matches NaN / NA),
    else a line saying where and by how much they differ."""
    a = np.asarray(np.nan if ours is None else ours, dtype=float)
    b = as_array(ref)
    if a.shape != b.shape and a.size == b.size:
        a = a.reshape(b.shape)
    if a.shape != b.shape:
        return f"{label}: shape {a.shape} (ours) vs {b.shape} (metafor)"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if np.any(nan_a != nan_b):
        return f"{label}: ours {a.tolist()} vs metafor {b.tolist()} (NA in one only)"
    ok = nan_a | (np.abs(a - b) <= atol + rtol * np.abs(b)) | ((a == b) & np.isinf(b))
    if np.all(ok):
        return None
    bad = np.flatnonzero(~ok.ravel())
    j = int(bad[0])
    av, bv = a.ravel()[j], b.ravel()[j]
    relerr = abs(av - bv) / abs(bv) if bv != 0 else math.inf
    where = f"[{j}]" if a.ndim else ""
    return (f"{label}{where}: ours {av!r} vs metafor {bv!r} (rel. diff {relerr:.2e}; "
            f"{bad.size} of {a.size} entries differ)")


def check_all(pairs: list[tuple[str, object, object]], rtol: float = RTOL) -> None:
    """Assert every (label, ours, ref) pair matches; report every mismatch at once."""
    problems = [m for label, ours, ref in pairs if (m := mismatch(label, ours, ref, rtol)) is not None]
    assert not problems, "\n".join(problems)
