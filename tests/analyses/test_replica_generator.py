"""The synthetic replica: deterministic, labelled, in the extraction form's layout, drawn from the review's
reported distributions and calibrated to each main contrast's published k, SMD and I².

Targets are the review's printed numbers (Fleckenstein et al. 2022, medRxiv v2, Results; also in
analyses/published.yaml). This checks the generator, never the review: agreement is built in."""

from pathlib import Path

import pytest
import yaml

from metaexercise.commands.cli import main
from metaexercise.engine.effects import escalc
from metaexercise.engine.model import rma
from metaexercise.extraction import schema
from metaexercise.review import replica
from metaexercise.review.declaration import load_review

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rep():
    return replica.generate(review=REVIEW)


def _contrast(rep, contrast):
    """Pair the replica's change rows directly (independently of the sheets layer) and fit REML."""
    outcome, comparator, window = contrast.split("_")
    week = {"short": 12.0, "long": 52.0}[window]
    rows = rep.outcomes[(rep.outcomes["value_kind"] == "change") & (rep.outcomes["outcome"] == outcome)
                        & (rep.outcomes["timepoint_weeks"] == week)]
    ind = rows[rows["arm_id"] == "ind"].set_index("study_id")
    ctl = rows[rows["arm_id"] == {"active": "act", "passive": "pas"}[comparator]].set_index("study_id")
    both = ind.merge(ctl, left_index=True, right_index=True, suffixes=("_1", "_2"))
    es = escalc("SMD", m1i=both["mean_1"], sd1i=both["sd_1"], n1i=both["n_1"],
                m2i=both["mean_2"], sd2i=both["sd_2"], n2i=both["n_2"])
    return rma(es.yi, es.vi)


@pytest.mark.parametrize("contrast", list(replica.TARGETS))
def test_each_main_contrast_has_published_k_and_about_its_smd_and_i2(rep, contrast):
    k, smd, i2 = replica.TARGETS[contrast]
    fit = _contrast(rep, contrast)
    assert fit.k == k
    # tolerance: the sheets round means and SDs to 6 decimals, moving g by < 1e-5
    assert fit.estimate == pytest.approx(smd, abs=1e-4)
    assert fit.I2 == pytest.approx(i2, abs=0.05)


def test_targets_agree_with_the_registry_when_it_lists_them():
    path = ROOT / "analyses" / "published.yaml"
    if not path.exists():
        pytest.skip("analyses/published.yaml not written yet")
    entries = yaml.safe_load(path.read_text(encoding="utf-8")).get("entries", [])
    checked = 0
    for e in entries:
        if e.get("kind") == "effect" and e.get("place") == "results" and e.get("contrast") in replica.TARGETS:
            k, smd, i2 = replica.TARGETS[e["contrast"]]
            assert float(e["estimate"]) == smd, e["id"]
            if e.get("k") is not None:
                assert int(e["k"]) == k, e["id"]
            if e.get("i2") is not None:
                assert float(str(e["i2"]).rstrip("%")) == i2, e["id"]
            checked += 1
    assert checked >= 8


def test_deterministic_and_seed_dependent(rep):
    again = replica.generate(review=REVIEW)
    for name, frame in rep.sheets().items():
        assert frame.to_csv(index=False) == again.sheets()[name].to_csv(index=False), name
    other = replica.generate(replica.SEED + 1, review=REVIEW)
    assert not other.outcomes["mean"].equals(rep.outcomes["mean"])


def test_labelled_synthetic_and_named_replica(rep):
    assert rep.studies["synthetic"].all()
    assert list(rep.studies["study_id"]) == [f"Replica-{i:02d}" for i in range(1, 59)]
    for frame in rep.sheets().values():
        assert frame["source"].str.contains(replica.LABEL).all()
    assert replica.LABEL == "synthetic replica — not the trials' data"


def test_sheets_follow_the_schema_and_codes(rep):
    for name, frame in rep.sheets().items():
        sheet = schema.form(REVIEW.sheet_vocabulary()).sheet(name)
        assert tuple(frame.columns) == sheet.column_names
        for col in sheet.columns:
            if col.type == "code":
                assert frame[col.name].dropna().isin(col.codes).all(), (name, col.name)
            if col.required:
                assert frame[col.name].notna().all(), (name, col.name)


def test_reported_counts_and_distributions(rep):
    s = rep.studies
    assert len(s) == 58
    assert s["intervention_type"].value_counts()[["mixed", "sensorimotor/motor control"]].tolist() == [24, 22]
    assert (s["psych_component"] != "none").sum() == 34
    assert s["rob_overall"].value_counts().to_dict() == {"high": 32, "some concerns": 26}
    arms = rep.arms
    per_study = arms.groupby("study_id")["arm_role"].size()
    assert (per_study == 3).sum() == 11  # 11 studies with more than one control group
    assert arms["control_matched"].fillna(False).astype(bool).sum() == 11
    assert (arms["control_type"] == "true control").sum() == 3
    # quartiles near the printed ones (stratified draws; tolerance ~ one stratum)
    q1, med, q3 = replica.quantiles(s["mean_age"])
    assert (q1, med, q3) == pytest.approx((41.7, 45.4, 49.4), abs=1.0)
    q1, med, q3 = replica.quantiles(arms.groupby("study_id")["n_randomised"].sum())
    assert med == pytest.approx(121, rel=0.1) and q1 == pytest.approx(69, rel=0.15)
    assert q3 == pytest.approx(238, rel=0.15)
    assert replica.quantiles(s["training_weeks"]) == pytest.approx((6, 8, 12), abs=1)
    assert rep.total_participants == pytest.approx(10084, rel=0.1)
    assert s["inclusion_status"].eq("included without usable data").sum() == 5


def test_rob_domains_consistent_with_overall(rep):
    worst = rep.risk_of_bias.groupby("study_id")["judgement"].agg(
        lambda j: "high" if (j == "high").any() else "some concerns" if (j == "some concerns").any() else "low")
    assert (worst == rep.studies.set_index("study_id")["rob_overall"]).all()


def test_not_honoured_lists_the_contradictions():
    text = " ".join(replica.NOT_HONOURED)
    assert "42 + 21 + 3 + 5 + 1 = 72" in text and "k = 32" in text and "= 61" in text


def test_command_writes_sheets_and_readme(tmp_path, capsys):
    (tmp_path / "review.yaml").write_bytes((Path(__file__).resolve().parents[2] / "review.yaml").read_bytes())
    assert main(["replica", "--project", str(tmp_path)]) == 0
    folder = tmp_path / "replica" / "extraction"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "arms.csv", "outcomes.csv", "risk_of_bias.csv", "studies.csv"]
    assert "not the trials' data" in (folder / "README.md").read_text(encoding="utf-8")
    assert "58 studies" in capsys.readouterr().out
    first = (folder / "outcomes.csv").read_bytes()
    assert main(["replica", "--project", str(tmp_path)]) == 0
    assert (folder / "outcomes.csv").read_bytes() == first
