"""numba's on-disk cache: the batched kernels are cached (a second run loads them instead of compiling for
seconds), and their cache knows that engine/kernels.py is compiled into them, so that editing the shared
steps can never leave stale machine code in use."""

import numpy as np
import pytest

from metaexercise.engine import batch, batch_mods, kernels


@pytest.mark.skipif(not batch._CACHE, reason="numba's cache is off (read-only install, no NUMBA_CACHE_DIR)")
def test_cached_kernels_are_stamped_with_the_shared_kernels_source():
    digest = batch._file_digest(kernels.__file__)
    for dispatcher in (batch._fit_rows, batch._fit_rows_serial, batch._fit_one, batch._fisher_scoring,
                       batch_mods._fit_permuted, batch_mods._tau2_mods):
        cache = dispatcher._cache  # numba internals, checked here so that a numba upgrade cannot hide a change
        assert type(cache).__name__ == "FunctionCache"
        own_stamp, dependencies = cache._cache_file._source_stamp
        assert dependencies == (digest,)


def test_shared_steps_are_compiled_into_their_callers_not_cached_alone():
    # numba's cache index does not tell compile options apart: batch (fastmath "contract") and batch_mods
    # (no fastmath) compile the same kernels.py functions, so neither may cache them under kernels.py's name
    for dispatcher in (batch._scoring_steps, batch._next_tau2, batch_mods._scoring_steps, batch_mods._next_tau2):
        assert type(dispatcher._cache).__name__ == "NullCache"


def test_read_only_input_is_copied_not_compiled_for_again(tmp_path):
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.01, 0.2, (5, 6))
    yi = rng.normal(0.1, np.sqrt(vi + 0.02))
    np.save(tmp_path / "yi.npy", yi)
    ro = np.load(tmp_path / "yi.npy", mmap_mode="r")
    assert not ro.flags.writeable and batch._writable(ro).flags.writeable
    assert batch._writable(yi) is yi  # already a writable C-contiguous float64 array: no copy
    res = batch.rma_batch(ro, vi)
    signatures = [str(s) for s in batch._fit_rows_serial.signatures]
    assert not any("readonly" in s for s in signatures)
    np.testing.assert_array_equal(res.tau2, batch.rma_batch(yi, vi).tau2)
