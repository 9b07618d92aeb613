"""escalc for two-group counts and incidence rates against metafor 3.8.1: tests/reference/mh.json
(tests/reference/make_mh_reference.R).

RR, OR, RD (vtype LS, UB, AV and one per study), AS, PETO, YUQ, YUY on dat.bcg (ai, bi, ci, di),
dat.nielweise2007, dat.yusuf1985 tables 6 and 9, dat.collins1985a (ai, ci, n1i, n2i; zero cells, double zeros,
NAs) and seeded synthetic edge tables (synthetic replica - not the trials' data); IRR, IRD, IRSD on
dat.nielweise2008, dat.hart1999 and seeded synthetic rates with zero counts; each with add / to / drop00
variants. Relative 1e-6, absolute floor 1e-10; NaN where metafor has NA; the same warnings as metafor.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from engine_reference import as_array, check_all, fixture

from metaexercise.engine.escalc_counts import counts_effects
from metaexercise.engine.measures import RATIO_MEASURES, is_ratio

MH = fixture("mh")
CASES = list(MH["escalc"])


def inputs(dataset: str) -> dict[str, np.ndarray]:
    src = MH["counts"].get(dataset) or MH["rates"][dataset]
    return {name: as_array(values) for name, values in src["inputs"].items()}


def arguments(case: dict) -> dict:
    return dict(case["args"] or {})


def _run(fn, case):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, sorted({str(w.message) for w in caught})


@pytest.mark.parametrize("key", CASES)
def test_counts_effects_match_metafor(key):
    c = MH["escalc"][key]
    (yi, vi), said = _run(lambda: counts_effects(c["measure"], **inputs(c["dataset"]), **arguments(c)), c)
    check_all([(f"{key} yi", yi, c["yi"]), (f"{key} vi", vi, c["vi"])])
    assert said == sorted(c["warnings"]), f"{key}: warnings {said} vs metafor's {c['warnings']}"


@pytest.mark.parametrize("key", CASES)
def test_escalc_routes_counts_to_metafor_values(key):
    """The public `escalc` (engine/effects.py) gives the same numbers for these measures."""
    from metaexercise.engine.effects import escalc

    c = MH["escalc"][key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = escalc(c["measure"], **inputs(c["dataset"]), **arguments(c))
    assert es.measure == c["measure"]
    check_all([(f"{key} yi", es.yi, c["yi"]), (f"{key} vi", es.vi, c["vi"])])


def test_fixture_covers_every_measure_and_option():
    measures = {c["measure"] for c in MH["escalc"].values()}
    assert measures == {"RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY", "IRR", "IRD", "IRSD"}
    options = {name for c in MH["escalc"].values() for name in (c["args"] or {})}
    assert options == {"add", "to", "drop00", "vtype"}
    # the real data sets carry zero cells, double-zero studies and missing counts
    yus = inputs("yusuf1985_9")
    assert np.isnan(yus["ai"]).any() and ((yus["ai"] == 0) & (yus["ci"] == 0)).any()


def test_group_sizes_and_non_events_give_the_same_tables():
    c = inputs("bcg")
    from_cells = counts_effects("OR", **c)
    from_sizes = counts_effects("OR", ai=c["ai"], ci=c["ci"], n1i=c["ai"] + c["bi"], n2i=c["ci"] + c["di"])
    np.testing.assert_array_equal(from_cells[0], from_sizes[0])
    np.testing.assert_array_equal(from_cells[1], from_sizes[1])


def test_add_defaults_follow_metafor():
    # AS and IRSD add nothing unless asked (metafor: add = 0 when not given), the others 1/2
    t = dict(ai=[0, 3], bi=[10, 7], ci=[2, 4], di=[8, 6])
    np.testing.assert_array_equal(counts_effects("AS", **t)[0], counts_effects("AS", **t, add=0)[0])
    assert not np.array_equal(counts_effects("AS", **t)[0], counts_effects("AS", **t, add=0.5)[0])
    np.testing.assert_array_equal(counts_effects("RR", **t)[0], counts_effects("RR", **t, add=0.5)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(measure="XX", ai=[1], bi=[2], ci=[3], di=[4]), ValueError, "unknown measure"),
        (dict(measure="RR", ai=[1, 2], bi=[2, 2], ci=[3, 1], di=[4, -1]), ValueError, "di is negative (a count) at positions [1]"),
        (dict(measure="RR", ai=[5, 2], ci=[3, 1], n1i=[4, 9], n2i=[4, 4]), ValueError, "ai is larger than n1i"),
        (dict(measure="OR", ai=[1], bi=[2], ci=[3], di=[4], n1i=[4]), ValueError, "n1i is not ai + bi"),
        (dict(measure="OR", ai=[1], ci=[3], di=[4]), TypeError, "'bi' or 'n1i'"),
        (dict(measure="OR", ai=[1, 2], bi=[2], ci=[3, 3], di=[4, 4]), ValueError, "'bi' has length 1, expected 2"),
        (dict(measure="RR", ai=[1], bi=[2], ci=[3], di=[4], to="some"), ValueError, "unknown 'to'"),
        (dict(measure="RD", ai=[1], bi=[2], ci=[3], di=[4], vtype="HO"), ValueError, "'vtype' must be one of"),
        (dict(measure="RD", ai=[1, 1], bi=[2, 2], ci=[3, 3], di=[4, 4], vtype=["LS", "UB", "AV"]), ValueError,
         "one per study"),
        (dict(measure="IRR", x1i=[1], x2i=[2], t1i=[0], t2i=[5]), ValueError, "t1i is <= 0"),
        (dict(measure="IRD", x1i=[1], x2i=[2], t1i=[3]), TypeError, "'t2i' is required"),
        (dict(measure="OR", ai=["a"], bi=[2], ci=[3], di=[4]), TypeError, "'ai' must be numeric"),
        (dict(measure="OR", ai=[1], bi=[2], ci=[3], di=[4], add=float("inf")), ValueError, "'add' must be finite"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(kwargs, error, words):
    kwargs = dict(kwargs)
    measure = kwargs.pop("measure")
    with pytest.raises(error) as info:
        counts_effects(measure, **kwargs)
    assert words in str(info.value)


def test_ratio_measures_are_the_log_scale_ones():
    assert {"RR", "OR", "PETO", "IRR", "ROM"} <= set(RATIO_MEASURES)
    assert not any(is_ratio(m) for m in ("RD", "AS", "YUQ", "YUY", "IRD", "IRSD", "SMD", "MD", None))
