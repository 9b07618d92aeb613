"""PRISMA 2020 flow counts for an updated review (Page et al., BMJ 2021;372:n71, doi:10.1136/bmj.n71;
template "updated systematic reviews which included searches of databases, registers and other sources").

Definitions (the project's DESIGN, "Searches"):
- records_identified: records imported into `searches/` for this update (every export, every database);
- duplicates_removed: records dropped as duplicates within and across these imports, plus records already
  screened in an earlier edition (broken down in duplicates_within_update and previously_screened);
- records_screened: unique records sent to title/abstract screening (= identified − removed);
- records_excluded, reports_sought, reports_not_retrieved, reports_assessed, reports_excluded (by reason):
  from the screening log's final decisions; records and reports still awaiting a decision are counted
  in the *_awaiting_* keys so that every box adds up;
- new_studies: distinct study_id among the full texts included; total_studies = previous + new.

The first edition's flow is carried as `FIRST_EDITION`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from metaexercise.searches.screening import EXCLUSION_REASONS

#: The first edition's flow. Source: Fleckenstein et al., medRxiv 2021.12.16.21267900 v2, Results, first
#: paragraph: "Our electronic database searches identified 1,172 unique citations. We screened the
#: full-texts of 109 publications, identified 73 as potentially eligible, and included 58 RCTs ... At least,
#: 53 studies contained sufficient data ...". Searches up to 31 January 2022 (Abstract).
FIRST_EDITION: dict[str, int | str] = {
    "records_screened": 1172,
    "reports_assessed": 109,
    "reports_potentially_eligible": 73,
    "studies_included": 58,
    "studies_with_data": 53,
    "last_search": "2022-01-31",
}
PREVIOUS_STUDIES = 58


@dataclass(frozen=True, slots=True)
class PrismaCounts:
    """Counts for each box of the PRISMA 2020 flow diagram of an updated review."""

    previous_studies: int
    records_identified: int
    records_by_database: dict[str, int]
    duplicates_removed: int
    duplicates_within_update: int
    previously_screened: int
    records_screened: int
    records_excluded: int
    records_awaiting_screening: int
    reports_sought: int
    reports_not_retrieved: int
    reports_awaiting_retrieval: int
    reports_assessed: int
    reports_excluded: dict[str, int]
    reports_excluded_total: int
    reports_awaiting_assessment: int
    new_reports: int
    new_studies: int
    total_studies: int
    first_edition: dict[str, int | str] = field(default_factory=lambda: dict(FIRST_EDITION))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def check(self) -> list[str]:
        """The flow's identities that fail (an empty list when every box adds up)."""
        rules = {
            "records_identified = duplicates_removed + records_screened":
                self.records_identified == self.duplicates_removed + self.records_screened,
            "duplicates_removed = duplicates_within_update + previously_screened":
                self.duplicates_removed == self.duplicates_within_update + self.previously_screened,
            "records_identified = sum of records_by_database":
                self.records_identified == sum(self.records_by_database.values()),
            "records_screened = records_excluded + reports_sought + records_awaiting_screening":
                self.records_screened == self.records_excluded + self.reports_sought
                + self.records_awaiting_screening,
            "reports_sought = reports_not_retrieved + reports_assessed + awaiting retrieval or assessment":
                self.reports_sought == self.reports_not_retrieved + self.reports_assessed
                + self.reports_awaiting_retrieval + self.reports_awaiting_assessment,
            "reports_assessed = reports_excluded_total + new_reports":
                self.reports_assessed == self.reports_excluded_total + self.new_reports,
            "total_studies = previous_studies + new_studies":
                self.total_studies == self.previous_studies + self.new_studies,
        }
        return [rule for rule, holds in rules.items() if not holds]

    def summary(self) -> str:
        excluded = ", ".join(f"{k} {v}" for k, v in self.reports_excluded.items() if v) or "none"
        return "\n".join([
            f"Previous studies: {self.previous_studies} (first edition: {FIRST_EDITION['records_screened']} "
            f"records, {FIRST_EDITION['reports_assessed']} full texts)",
            "Records identified: " + str(self.records_identified) + " ("
            + ", ".join(f"{k} {v}" for k, v in self.records_by_database.items()) + ")",
            f"Duplicates removed: {self.duplicates_removed} (within this update {self.duplicates_within_update}, "
            f"screened in an earlier edition {self.previously_screened})",
            f"Records screened: {self.records_screened}; excluded: {self.records_excluded}; "
            f"awaiting: {self.records_awaiting_screening}",
            f"Reports sought: {self.reports_sought}; not retrieved: {self.reports_not_retrieved}",
            f"Reports assessed: {self.reports_assessed}; excluded: {self.reports_excluded_total} ({excluded})",
            f"New studies: {self.new_studies} ({self.new_reports} reports); total studies: {self.total_studies}",
        ])


def count_flow(ledger: pd.DataFrame, deduplicated: pd.DataFrame, log: pd.DataFrame,
               previous_studies: int = PREVIOUS_STUDIES) -> PrismaCounts:
    """PRISMA counts from the import ledger (database, records), the de-duplication statuses (record_id,
    status) and the screening log (restricted to records still kept after de-duplication)."""
    by_database = (ledger.assign(records=pd.to_numeric(ledger["records"])).groupby("database", sort=False)
                   ["records"].sum())
    status = deduplicated["status"]
    within = int((status == "duplicate").sum())
    previously = int((status == "previously screened").sum())
    kept = set(deduplicated.loc[status.isin(["unique", "kept"]), "record_id"])
    screened = len(kept)
    log = log[log["record_id"].isin(kept)]
    ta = log["ta_decision"]
    sought = log[ta == "include"]
    not_retrieved = int((sought["ft_retrieved"] == "no").sum())
    assessed = sought[sought["ft_decision"] != ""]
    awaiting_assessment = int(((sought["ft_retrieved"] == "yes") & (sought["ft_decision"] == "")).sum())
    reasons = assessed.loc[assessed["ft_decision"] == "exclude", "exclusion_reason"].value_counts()
    included = assessed[assessed["ft_decision"] == "include"]
    studies = included["study_id"].where(included["study_id"] != "", included["record_id"])
    new_studies = int(studies.nunique())
    return PrismaCounts(
        previous_studies=previous_studies,
        records_identified=int(by_database.sum()),
        records_by_database={str(k): int(v) for k, v in by_database.items()},
        duplicates_removed=within + previously,
        duplicates_within_update=within,
        previously_screened=previously,
        records_screened=screened,
        records_excluded=int((ta == "exclude").sum()),
        records_awaiting_screening=screened - int(ta.isin(["include", "exclude"]).sum()),
        reports_sought=len(sought),
        reports_not_retrieved=not_retrieved,
        reports_awaiting_retrieval=len(sought) - not_retrieved - len(assessed) - awaiting_assessment,
        reports_assessed=len(assessed),
        reports_excluded={code: int(reasons.get(code, 0)) for code in EXCLUSION_REASONS},
        reports_excluded_total=int(reasons.sum()),
        reports_awaiting_assessment=awaiting_assessment,
        new_reports=len(included),
        new_studies=new_studies,
        total_studies=previous_studies + new_studies,
    )
