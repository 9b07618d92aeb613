"""The published registry (analyses/published.yaml) and its loader."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from metaexercise.errors import SpecError
from metaexercise.review.published import NUMBER_FIELDS, Printed, load_published, parse_certainty

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "analyses" / "published.yaml"
MAIN_CONTRASTS = [f"{o}_{c}_{w}" for o in ("pain", "disability") for c in ("active", "passive")
                  for w in ("short", "long")]


@pytest.fixture(scope="module")
def registry():
    return load_published(REGISTRY)


#: Counts the paper spells out in words.
NUMBER_WORDS = {"5": "five", "11": "eleven", "13": "thirteen", "24": "twenty-four", "34": "thirty-four",
                "42": "forty-two", "58": "fifty-eight"}


def _normalise(text: str) -> str:
    text = text.replace("\u2212", "-").replace("\u2013", "-")
    return re.sub(r"-\s+(?=[\d.])", "-", text)


def test_every_printed_number_stands_in_its_verbatim_quote(registry):
    for e in registry.entries:
        quote = _normalise(e.quote)
        for f in NUMBER_FIELDS:
            value = getattr(e, f)
            if value is not None:
                in_words = NUMBER_WORDS.get(value.text, "\0") in quote.lower()
                assert value.text in quote or in_words, f"{e.id}: {f} {value.text!r} not in quote {e.quote!r}"
        if e.certainty:
            assert e.certainty in quote, e.id


def test_each_main_contrast_has_its_results_entry_with_k_ci_and_i2(registry):
    for contrast in MAIN_CONTRASTS:
        e = registry.effect(contrast, "results")
        assert e is not None and e.k is not None and e.i2 is not None, contrast
        assert registry.certainty(contrast, "results") is not None, contrast


def test_where_abstract_and_results_differ_both_are_kept(registry):
    abstract = registry.effect("disability_passive_short", "abstract")
    results = registry.effect("disability_passive_short", "results")
    assert (abstract.estimate.text, abstract.ci_lb.text, abstract.ci_ub.text) == ("-0.18", "-0.22", "0.01")
    assert (results.estimate.text, results.ci_lb.text, results.ci_ub.text, results.k.text) == (
        "-0.09", "-0.18", "0.01", "22")
    assert abstract.certainty == "low"
    assert registry.certainty("disability_passive_short", "results") == "moderate"


def test_to_frame_has_one_row_per_entry_with_text_and_value(registry):
    frame = registry.to_frame()
    assert len(frame) == len(registry.entries)
    row = frame.set_index("id").loc["prisma.records"]
    assert row["n"] == "1,172" and row["n_value"] == 1172


@pytest.mark.parametrize(
    ("text", "value", "lo", "hi"),
    [
        ("-0.10", -0.10, -0.105, -0.095),  # two decimals: +-0.005
        (".1", 0.1, 0.05, 0.15),  # one decimal: +-0.05
        ("73%", 73.0, 72.5, 73.5),  # integer percent: +-0.5
        ("1,172", 1172.0, 1171.5, 1172.5),
        ("- 0.373", -0.373, -0.3735, -0.3725),
        ("\u22120.28", -0.28, -0.285, -0.275),
    ],
)
def test_printed_number_stands_for_its_rounding_interval(text, value, lo, hi):
    p = Printed.parse(text)
    assert p.value == pytest.approx(value)
    assert (p.lo, p.hi) == (pytest.approx(lo), pytest.approx(hi))


def test_printed_relations_and_exact_counts():
    p = Printed.parse("> .05")
    assert (p.lo, p.hi) == (pytest.approx(0.05), math.inf)
    assert Printed.parse("< 0.001").lo == -math.inf
    k = Printed.parse("32", exact=True)
    assert (k.lo, k.hi) == (32, 32)
    with pytest.raises(ValueError, match="not a number"):
        Printed.parse("about 3")


def test_certainty_words_and_ranges():
    assert parse_certainty("very low") == {"very low"}
    assert parse_certainty("low to moderate") == {"low", "moderate"}
    assert parse_certainty("very low to moderate") == {"very low", "low", "moderate"}
    with pytest.raises(ValueError):
        parse_certainty("poor")


ENTRY = """\
entries:
  - id: pain_active_short.results
    kind: effect
    contrast: pain_active_short
    place: results
    section: Results
    quote: "SMD -0.28; 95% CI -0.42 to -0.14"
    estimate: "-0.28"
    ci_lb: "-0.42"
    ci_ub: "-0.14"
"""


def _write(tmp_path, text):
    path = tmp_path / "published.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_registry_loads(tmp_path):
    reg = load_published(_write(tmp_path, ENTRY))
    assert reg.get("pain_active_short.results").ci_ub.text == "-0.14"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "    colour: red\n", r"unknown key\(s\) \['colour'\]"),
        (lambda t: t.replace('    ci_ub: "-0.14"\n', ""), r"missing key\(s\) \['ci_ub'\]"),
        (lambda t: t + '    estimate: "-0.30"\n', "duplicate key 'estimate'"),
        (lambda t: t.replace('estimate: "-0.28"', "estimate: -0.28"), "quoted"),
        (lambda t: t.replace("place: results", "place: preface"), "place 'preface'"),
        (lambda t: t + "    certainty: poor\n", "certainty 'poor'"),
        (lambda t: t + "    claim: maybe\n", "claim 'maybe'"),
        (lambda t: t.replace("kind: effect", "kind: rumour"), "kind 'rumour'"),
        (lambda t: t + "extras: 1\n", "unknown top-level key"),
        (lambda t: t + "relations:\n  - {id: r, kind: sum, parts: [nope], total: nope, why: x}\n", "unknown entry"),
    ],
)
def test_bad_registries_raise_a_spec_error_naming_the_entry(tmp_path, edit, message):
    with pytest.raises(SpecError, match=message) as info:
        load_published(_write(tmp_path, edit(ENTRY)))
    assert "published.yaml" in str(info.value)


def test_an_unreadable_registry_names_the_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_published(tmp_path / "missing.yaml")
