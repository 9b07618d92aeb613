"""Helpers shared by the batch tests."""

import numpy as np


def pad(rows: list[list[float]], width: int | None = None, shuffle_seed: int | None = None) -> np.ndarray:
    """Stack ragged rows into a NaN-padded 2-D array; with `shuffle_seed`, the NaNs are scattered among the
    values (a row's studies need not come first)."""
    width = width or max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan)
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    for i, r in enumerate(rows):
        cols = np.arange(len(r)) if rng is None else np.sort(rng.choice(width, len(r), replace=False))
        out[i, cols] = r
    return out
