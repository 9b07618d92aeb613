"""PRISMA 2020 counts of an updated review, through the `metaexercise search` command: the numbers are
worked out by hand from the small exports below, and every box adds up."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from search_exports import NBIB_TWO, RIS_TWO

from metaexercise.commands.cli import main
from metaexercise.searches.prisma import FIRST_EDITION, count_flow
from metaexercise.searches.screening import new_log_rows


def _search(project, *args) -> int:
    return main(["search", *args, "--project", str(project)])


def test_update_flow_through_the_command(tmp_path, capsys):
    project = tmp_path / "project"
    (project / "searches").mkdir(parents=True)
    # the earlier edition screened the Descarreaux record (second PubMed record)
    (project / "searches" / "previous_edition.csv").write_text(
        "title,authors,year,doi,pmid,decision,edition\n"
        "Evaluation of a specific home exercise program for low back pain,Descarreaux M,2002,,12381971,"
        "include,2022\n")
    nbib, ris = tmp_path / "pubmed.nbib", tmp_path / "embase.ris"
    nbib.write_text(NBIB_TWO)
    # the Embase export repeats the Apeldoorn record (DOI in upper case) before its own two records
    ris.write_text("TY  - JOUR\nTI  - A randomized controlled trial on the effectiveness of a "
                   "classification-based system\nAU  - Apeldoorn, A. T.\nPY  - 2012\n"
                   "DO  - 10.1097/BRS.0B013E31824D9F2B\nER  - \n\n" + RIS_TWO)
    assert _search(project, "import", str(nbib), "--database", "PubMed", "--date", "2026-11-01") == 0
    assert _search(project, "import", str(ris), "--database", "Embase", "--date", "2026-11-02") == 0
    assert _search(project, "screen") == 0
    log_path = project / "searches" / "screening.csv"
    log = pd.read_csv(log_path, dtype=str, keep_default_na=False)
    # 5 identified - 1 duplicate (DOI) - 1 screened in the earlier edition = 3 sent to screening
    assert len(log) == 3
    log.loc[0, ["ta_r1", "ta_r2", "ta_decision"]] = ["include", "include", "include"]
    log.loc[0, ["ft_retrieved", "ft_r1", "ft_r2", "ft_decision", "study_id"]] = [
        "yes", "include", "include", "include", "Apeldoorn 2012"]
    log.loc[1, ["ta_r1", "ta_r2", "ta_decision"]] = ["include", "unclear", "include"]
    log.loc[1, ["ft_retrieved", "ft_r1", "ft_r2", "ft_decision", "exclusion_reason"]] = [
        "yes", "exclude", "exclude", "exclude", "intervention"]
    log.loc[2, ["ta_r1", "ta_r2", "ta_decision"]] = ["exclude", "exclude", "exclude"]
    log.to_csv(log_path, index=False)
    capsys.readouterr()
    assert _search(project, "status", "--json") == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["records_identified"] == 5 and counts["records_by_database"] == {"PubMed": 2, "Embase": 3}
    assert counts["duplicates_removed"] == 2
    assert (counts["duplicates_within_update"], counts["previously_screened"]) == (1, 1)
    assert counts["records_screened"] == 3
    assert counts["records_excluded"] == 1 and counts["records_awaiting_screening"] == 0
    assert counts["reports_sought"] == 2 and counts["reports_not_retrieved"] == 0
    assert counts["reports_assessed"] == 2
    assert counts["reports_excluded"]["intervention"] == 1 and counts["reports_excluded_total"] == 1
    assert counts["new_studies"] == 1 and counts["previous_studies"] == 58 and counts["total_studies"] == 59
    assert counts["first_edition"] == FIRST_EDITION
    # the included study goes to extraction with an id that does not clash with extraction/studies.csv
    (project / "extraction").mkdir()
    (project / "extraction" / "studies.csv").write_text("study_id,first_author,year\napeldoorn2012,Apeldoorn,2012\n")
    assert _search(project, "included") == 0
    studies = pd.read_csv(project / "searches" / "new_studies.csv", dtype=str, keep_default_na=False)
    assert studies[["extraction_id", "study_id", "first_author", "year", "source"]].values.tolist() == [
        ["apeldoorn2012b", "Apeldoorn 2012", "Apeldoorn", "2012", "https://doi.org/10.1097/brs.0b013e31824d9f2b"]]
    # a re-run of the same search adds nothing to screen, and screened rows are kept
    assert _search(project, "screen") == 0
    assert pd.read_csv(log_path, dtype=str, keep_default_na=False).equals(log.astype(str))


def test_first_edition_constants_are_the_reviews():
    """Fleckenstein et al., medRxiv v2, Results: 1,172 citations, 109 full texts, 73 potentially eligible,
    58 RCTs included, 53 with sufficient data."""
    assert [FIRST_EDITION[k] for k in ("records_screened", "reports_assessed", "reports_potentially_eligible",
                                        "studies_included", "studies_with_data")] == [1172, 109, 73, 58, 53]


def _log(n, **columns):
    log = new_log_rows(pd.DataFrame({"record_id": [f"r{i}" for i in range(n)]}))
    for column, values in columns.items():
        log[column] = values
    return log


@pytest.mark.parametrize("seed", range(5))
def test_counts_add_up_for_a_partly_screened_log(seed):
    """Random decisions, some still pending: every PRISMA identity holds."""
    rng = pd.Series(range(40)).sample(frac=1, random_state=seed).to_numpy()
    ta = pd.Series(["include", "exclude", ""])[rng % 3].to_list()
    retrieved = [("yes" if r % 4 else "no") if t == "include" else "" for r, t in zip(rng, ta, strict=True)]
    ft = [("include" if r % 5 < 2 else "exclude" if r % 5 < 4 else "") if x == "yes" else ""
          for r, x in zip(rng, retrieved, strict=True)]
    reason = ["outcome" if f == "exclude" else "" for f in ft]
    log = _log(40, ta_decision=ta, ft_retrieved=retrieved, ft_decision=ft, exclusion_reason=reason)
    ledger = pd.DataFrame({"database": ["PubMed", "CENTRAL"], "records": ["30", "16"]})
    statuses = pd.DataFrame({"record_id": [f"r{i}" for i in range(46)],
                             "status": ["unique"] * 40 + ["duplicate"] * 4 + ["previously screened"] * 2})
    counts = count_flow(ledger, statuses, log)
    assert counts.check() == []
    assert counts.records_screened == 40 and counts.duplicates_removed == 6
