"""Property tests: anything rispy's writer writes, our streaming reader reads back; identifier
normalisation ignores case and prefixes."""

from __future__ import annotations

import rispy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaexercise.searches.normalise import normalise_doi
from metaexercise.searches.ris import read_ris

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                max_size=60).map(lambda s: " ".join(s.split())).filter(bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.fixed_dictionaries({"title": _text, "authors": st.lists(_text, min_size=1,
                                                                                    max_size=3)}),
                        min_size=1, max_size=5))
def test_rispy_writer_round_trip(tmp_path, entries):
    path = tmp_path / "export.ris"
    path.write_text(rispy.dumps([{"type_of_reference": "JOUR", **e} for e in entries]), encoding="utf-8")
    rows = [row for _, row in read_ris(path)]
    assert [r["title"] for r in rows] == [e["title"] for e in entries]
    assert [r["authors"] for r in rows] == ["; ".join(e["authors"]) for e in entries]


@given(suffix=st.from_regex(r"[A-Za-z0-9.\-_/()]{1,20}[A-Za-z0-9]", fullmatch=True),
       prefix=st.sampled_from(["", "doi:", "https://doi.org/", "http://dx.doi.org/"]))
def test_doi_normalisation_ignores_case_and_prefix(suffix, prefix):
    doi = f"10.1097/{suffix}"
    assert normalise_doi(prefix + doi.upper()) == normalise_doi(doi) == doi.lower()
