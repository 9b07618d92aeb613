"""Small hand-built extraction folders for the analyses tests (schema layout, blank cells left blank), in the
back-pain review's vocabulary (the repository root's review.yaml): read them with `VOCABULARY`."""

from pathlib import Path

import pandas as pd

from metaexercise.extraction.schema import csv_name, form
from metaexercise.review.declaration import load_review

#: The vocabulary of the rows below (arm roles, control types, outcomes, moderators): the back-pain review's.
VOCABULARY = load_review(Path(__file__).resolve().parents[2] / "review.yaml").sheet_vocabulary()

SOURCE = "hand-built test case (tests/analyses)"


def study(sid, *, synthetic=False, **kw):
    return {"study_id": sid, "first_author": sid.capitalize(), "year": 2020, "inclusion_status": "included",
            "synthetic": synthetic, "source": SOURCE, "rob_overall": "high", "intervention_type": "mixed",
            "psych_component": "none", "training_weeks": 8, "mean_age": 45, **kw}


def arm(sid, aid, role, control_type=None, n=50, matched=None):
    return {"study_id": sid, "arm_id": aid, "arm_label": aid, "arm_role": role, "control_type": control_type,
            "control_matched": matched, "n_randomised": n, "source": SOURCE}


def change(sid, aid, mean, sd, n, *, outcome="pain", weeks=12, instrument="NRS"):
    return {"study_id": sid, "arm_id": aid, "outcome": outcome, "instrument": instrument,
            "timepoint_weeks": weeks, "value_kind": "change", "reported_as": "scale", "n": n, "mean": mean,
            "sd": sd, "preferred": True, "source": SOURCE}


def baseline(sid, aid, mean, sd, n, *, outcome="pain", instrument="NRS"):
    return {**change(sid, aid, mean, sd, n, outcome=outcome, weeks=0, instrument=instrument),
            "value_kind": "baseline"}


def two_arm(sid, m1, m2, sd, n, *, control="active exercise", matched=False, base_sd=None, **study_kw):
    """(study row, arm rows, outcome rows) of a two-arm study with change scores at 12 weeks."""
    arms = [arm(sid, "i", "individualized", n=n), arm(sid, "c", "control", control, n=n, matched=matched)]
    outs = [change(sid, "i", m1, sd, n), change(sid, "c", m2, sd, n)]
    if base_sd is not None:
        outs += [baseline(sid, "i", 5.0, base_sd, n), baseline(sid, "c", 5.0, base_sd, n)]
    return [study(sid, **study_kw)], arms, outs


def write_sheets(folder: Path, studies, arms, outcomes, vocabulary=None) -> Path:
    """The four sheets as CSV in the form's column order (the back-pain vocabulary unless one is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    sheets = form(VOCABULARY if vocabulary is None else vocabulary)
    for sh, rows in ((sheets.studies, studies), (sheets.arms, arms), (sheets.outcomes, outcomes),
                     (sheets.risk_of_bias, [])):
        frame = pd.DataFrame(rows, columns=list(sh.column_names))
        frame.to_csv(folder / csv_name(sh.name), index=False)
    return folder


def build(folder: Path, *parts) -> Path:
    """Write the sheets of several `two_arm(...)` results."""
    studies, arms, outs = [], [], []
    for s, a, o in parts:
        studies += s
        arms += a
        outs += o
    return write_sheets(folder, studies, arms, outs)
