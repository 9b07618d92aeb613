"""A generated corpus of malformed inputs for every CLI verb that reads a project's files.

`build_base(root)` makes one small, valid project: `metaexercise init` from metadat's normand1999 table
(tests/reference/metadat; 9 studies, one SMD analysis), a risk-of-bias row, a filled extraction workbook
(`metaexercise template --fill`, FORM), a literature search imported and put up for screening, and a table of
reported results for `audit --reported` (REPORTED). Each `Case` damages one input of a copy of it and names
the verbs to run, the file the message must name and a regular expression for where in the file (sheet,
row and column; or line). `CASES` is built here, by code: file-level damage applied to every extraction
sheet (CSV) and to the workbook, cell-level damage of typed columns, and mutations of the analysis specs,
the instrument registry, the project file, the search files and the reported table.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METADAT = REPO / "tests" / "reference" / "metadat" / "normand1999_arms.csv"
FORM = "form.xlsx"
REPORTED = "reported.csv"
SHEETS = ("studies", "arms", "outcomes", "risk_of_bias")
SPEC = "analyses/analyses.yaml"
REGISTRY = "extraction/instruments.yaml"
EXPORT = "export.csv"

#: Verbs, as argument lists; PROJECT is replaced by the project folder.
RUN = ("run", "--quiet")
VALIDATE = ("validate",)
VALIDATE_FORM = ("validate", f"PROJECT/{FORM}")
IMPORT_FORM = ("import", f"PROJECT/{FORM}")
TEMPLATE = ("template", "PROJECT/new_form.xlsx")
TEMPLATE_FILL = ("template", "PROJECT/new_form.xlsx", "--fill", "PROJECT/extraction")
SEARCH_STATUS = ("search", "status")
AUDIT_REPORTED = ("audit", "--reported", f"PROJECT/{REPORTED}")


def build_base(root: Path) -> Path:
    """The valid project every case starts from (see the module docstring)."""
    from metaexercise.commands.cli import main

    assert main(["init", str(root), "--data", str(METADAT), "--title", "Hardening corpus"]) == 0
    rob = root / "extraction" / "risk_of_bias.csv"
    header = rob.read_text(encoding="utf-8").splitlines()[0]
    rob.write_text(header + "\nedinburgh,randomisation,low,computer list,normand1999,,,\n", encoding="utf-8")
    assert main(["--project", str(root), "template", str(root / FORM), "--fill", str(root / "extraction")]) == 0
    (root / EXPORT).write_text("title,authors,year,doi\nMotor control exercise,Roe B,2024,10.1/a\n"
                               "Graded activity,Doe J,2023,10.1/b\n", encoding="utf-8")
    assert main(["--project", str(root), "search", "import", str(root / EXPORT), "--database", "PubMed",
                 "--date", "2026-11-01"]) == 0
    assert main(["--project", str(root), "search", "screen"]) == 0
    (root / REPORTED).write_text("label,estimate,ci_lb,ci_ub,k,i2,q,p\nA,-0.28,-0.42,-0.14,32,45,56.4,0.001\n"
                                 "B,0.10,-0.05,0.25,5,0,3.1,0.19\n", encoding="utf-8")
    return root


@dataclass(frozen=True)
class Case:
    id: str
    area: str  # extraction-csv, extraction-xlsx, spec, registry, review, search, audit
    damage: Callable[[Path], None]  # applied to the project copy
    verbs: tuple[tuple[str, ...], ...]
    file: str  # the message names this file (a path's tail)
    where: str  # regex: the location, on a line of stderr that names the file


# ------------------------------------------------------------------------------------ damage helpers
def write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return damage


def edit(rel: str, function: Callable[[str], str]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        path.write_text(function(path.read_text(encoding="utf-8")), encoding="utf-8")
    return damage


def edit_bytes(rel: str, function: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        path.write_bytes(function(path.read_bytes()))
    return damage


def folder_instead(rel: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        if path.exists():
            path.unlink()
        path.mkdir()
        (path / "inside.txt").write_text("a folder named like the file\n", encoding="utf-8")
    return damage


def remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def cell(sheet: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set one cell of a CSV sheet (row: the spreadsheet's, header = 1)."""
    def damage(root: Path) -> None:
        path = root / "extraction" / f"{sheet}.csv"
        rows = _csv_rows(path)
        rows[row - 1][rows[0].index(column)] = value
        _write_rows(path, rows)
    return damage


def header(sheet: str, function: Callable[[list[str]], list[str]], drop: str | None = None):
    """Change a CSV sheet's header (and drop a column's cells when `drop` names it)."""
    def damage(root: Path) -> None:
        path = root / "extraction" / f"{sheet}.csv"
        rows = _csv_rows(path)
        if drop is not None:
            j = rows[0].index(drop)
            rows = [r[:j] + r[j + 1:] for r in rows]
        rows[0] = function(rows[0])
        _write_rows(path, rows)
    return damage


def _workbook(root: Path):
    import openpyxl

    return openpyxl.load_workbook(root / FORM)


def book(function: Callable) -> Callable[[Path], None]:
    """Change the form workbook with openpyxl (`function(workbook)`), then save it."""
    def damage(root: Path) -> None:
        wb = _workbook(root)
        function(wb)
        wb.save(root / FORM)
    return damage


def book_cell(sheet: str, ref: str, value) -> Callable[[Path], None]:
    def change(wb):
        wb[sheet][ref] = value
    return book(change)


def _part(root: Path, sheet: str) -> str:
    import openpyxl

    wb = openpyxl.load_workbook(root / FORM, read_only=True)
    try:
        return wb[sheet]._worksheet_path
    finally:
        wb.close()


def zip_edit(function: Callable[[dict[str, bytes], Path], None]) -> Callable[[Path], None]:
    """Rewrite the form's zip container: `function(parts, root)` changes the dict of part name -> bytes."""
    def damage(root: Path) -> None:
        with zipfile.ZipFile(root / FORM) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        function(parts, root)
        with zipfile.ZipFile(root / FORM, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in parts.items():
                z.writestr(name, data)
    return damage


def sheet_xml(sheet: str, function: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(parts: dict[str, bytes], root: Path) -> None:
        part = _part(root, sheet)
        parts[part] = function(parts[part])
    return zip_edit(change)


def table(sheet: str, row: int, column: str) -> str:
    """The location of a problem row: sheet, spreadsheet row and column (format_problems' table)."""
    return rf"\b{sheet}\s+{row}\s+{re.escape(column)}(\s|$)"


def sheet_only(sheet: str) -> str:
    return rf"\b{sheet}\b"


def line(n: int) -> str:
    return rf"line {n}\b"


# ------------------------------------------------------------------------------------ extraction: CSV
CSV_VERBS = (VALIDATE, RUN)
HUGE = "x" * (140 * 1024)  # one cell over the CSV reader's 128 KiB limit


def _csv_file_cases() -> list[Case]:
    out = []
    for sheet in SHEETS:
        rel = f"extraction/{sheet}.csv"

        def add(kind, damage, where, sheet=sheet):
            out.append(Case(f"csv-{sheet}-{kind}", "extraction-csv", damage, CSV_VERBS, f"{sheet}.csv", where))

        add("missing", remove(rel), sheet_only(sheet))
        add("empty-file", write(rel, b""), sheet_only(sheet))
        add("blank-lines-only", write(rel, "\n\n  \n"), sheet_only(sheet))
        add("latin1", edit_bytes(rel, lambda b: b.replace(b"\n", b"\n\xe9", 1)), rf"\b{sheet}\s+2\b")
        add("utf16", edit_bytes(rel, lambda b: b.decode("utf-8").encode("utf-16")), sheet_only(sheet))
        add("nul-bytes", edit_bytes(rel, lambda b: b + b"\x00\x00\x00\n"), sheet_only(sheet))
        add("binary", write(rel, bytes(range(256)) * 4), sheet_only(sheet))
        add("semicolons", edit(rel, lambda t: t.replace(",", ";")), rf"\b{sheet}\s+1\b")
        add("folder-named-like-it", folder_instead(rel), sheet_only(sheet))
        add("cell-over-128KiB", edit(rel, lambda t: t.split("\n", 1)[0] + "\n\"" + HUGE + "\"\n"
                                     + t.split("\n", 1)[1]), rf"\b{sheet}\s+2\b")
        add("unclosed-quote-to-end", edit(rel, lambda t: t.split("\n", 1)[0] + "\n\"" + HUGE[:100] + "\n"
                                          + t.split("\n", 1)[1]), rf"\b{sheet}\s+2\b")
        add("duplicate-column", header(sheet, lambda h: h[:-1] + [h[0]]), table(sheet, 1, "study_id"))
        add("unknown-column", header(sheet, lambda h: h[:-1] + ["colour"]), table(sheet, 1, "colour"))
        add("missing-required-column", header(sheet, lambda h: h, drop="study_id"), table(sheet, 1, "study_id"))
        add("ragged-row", edit(rel, lambda t: t.split("\n", 2)[0] + "\n" + t.split("\n", 2)[1] + ",extra,more\n"
                                + t.split("\n", 2)[2]), rf"\b{sheet}\s+2\b")
        add("empty-header-cell", header(sheet, lambda h: h[:1] + [""] + h[2:], drop=None),
            table(sheet, 1, "(column 2)"))
    return out


#: (sheet, row, column, value, id): typed cells given a wrong value; the message points at that cell.
CELLS = [
    ("studies", 2, "year", "twenty", "text-in-int"), ("studies", 3, "year", "2019.5", "int-not-whole"),
    ("studies", 4, "year", "1850", "int-below-minimum"), ("studies", 2, "icc", "1.5", "float-above-maximum"),
    ("studies", 2, "icc", "0,05", "decimal-comma"), ("studies", 2, "icc", "inf", "infinite"),
    ("studies", 2, "icc", "1e400", "overflow-to-infinite"), ("studies", 2, "icc", "nan", "not-a-number"),
    ("studies", 2, "inclusion_status", "maybe", "bad-code"), ("studies", 2, "inclusion_status", "", "required-blank"),
    ("studies", 2, "synthetic", "yes please", "bad-bool"), ("studies", 2, "design", "=cmd|' /C calc'!A0", "formula-text"),
    ("studies", 3, "study_id", "edinburgh", "duplicate-key"), ("studies", 2, "adverse_events_total", "-3", "negative-count"),
    ("arms", 2, "arm_role", "treatment", "bad-role"), ("arms", 2, "n_randomised", "1", "n-below-2"),
    ("arms", 2, "study_id", "nowhere2020", "unknown-study"), ("arms", 3, "control_type", "", "control-without-type"),
    ("arms", 2, "control_matched", "sometimes", "bad-bool"), ("arms", 2, "sessions_per_week", "-1", "negative"),
    ("outcomes", 2, "n", "abc", "text-in-n"), ("outcomes", 2, "sd", "0", "sd-zero"),
    ("outcomes", 2, "sd", "-4", "sd-negative"), ("outcomes", 2, "outcome", "happiness", "unknown-outcome"),
    ("outcomes", 2, "instrument", "VAS-1000", "unknown-instrument"), ("outcomes", 2, "arm_id", "ghost", "unknown-arm"),
    ("outcomes", 2, "value_kind", "average", "bad-value-kind"), ("outcomes", 2, "p_value", "1.5", "p-above-1"),
    ("outcomes", 2, "timepoint_weeks", "-2", "negative-time"), ("outcomes", 2, "mean", "55,5", "decimal-comma"),
    ("outcomes", 2, "ci_level", "100", "ci-level-100"), ("outcomes", 2, "preferred", "2", "bad-bool"),
    ("risk_of_bias", 2, "judgement", "unclear", "bad-judgement"),
    ("risk_of_bias", 2, "study_id", "nowhere2020", "unknown-study"),
]


def _csv_cell_cases() -> list[Case]:
    return [Case(f"csv-{sheet}-{kind}-{column}", "extraction-csv", cell(sheet, row, column, value), CSV_VERBS,
                 f"{sheet}.csv", table(sheet, row, column))
            for sheet, row, column, value, kind in CELLS]


# ------------------------------------------------------------------------------------ extraction: XLSX
XLSX_VERBS = (VALIDATE_FORM, IMPORT_FORM)


def _truncate(fraction: float) -> Callable[[Path], None]:
    return edit_bytes(FORM, lambda b: b[: int(len(b) * fraction)])


def _drop_part(kind: str) -> Callable[[Path], None]:
    def change(parts: dict[str, bytes], root: Path) -> None:
        name = _part(root, "arms") if kind == "sheet" else "xl/workbook.xml"
        del parts[name]
    return zip_edit(change)


def _xml_bomb(xml: bytes) -> bytes:
    lol = b'<!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)) + b"]>"
    xml = xml.replace(b"?>", b"?>" + lol, 1) if xml.startswith(b"<?xml") else lol + xml
    return xml.replace(b"<is><t>edinburgh</t></is>", b"<is><t>&lol9;</t></is>", 1)


def _xlsx_cases() -> list[Case]:
    c = []

    def add(kind, damage, where, file=FORM):
        c.append(Case(f"xlsx-{kind}", "extraction-xlsx", damage, XLSX_VERBS, file, where))

    add("truncated-half", _truncate(0.5), r"not a readable XLSX|damaged")
    add("truncated-90-percent", _truncate(0.9), r"not a readable XLSX|damaged")
    add("empty-file", write(FORM, b""), r"not an XLSX workbook")
    add("not-a-zip", write(FORM, "study_id,first_author\nx,y\n"), r"not an XLSX workbook")
    add("zip-without-workbook", _drop_part("workbook"), r"not a readable XLSX")
    add("zip-without-a-sheet-part", _drop_part("sheet"), r"\barms\b.*(damaged|missing sheet)|not a readable XLSX")
    add("broken-sheet-xml", sheet_xml("studies", lambda x: x.replace(b"</sheetData>", b"<row><c>", 1)),
        r"\bstudies\b.*damaged")
    add("sheet-xml-garbage", sheet_xml("arms", lambda x: x[: len(x) // 2]), r"\barms\b.*damaged")
    add("shared-string-out-of-range", sheet_xml("outcomes", lambda x: re.sub(
        rb'<c r="A2" t="inlineStr"><is><t>[^<]*</t></is></c>', b'<c r="A2" t="s"><v>999</v></c>', x, count=1)),
        r"\boutcomes\b.*damaged|\boutcomes\s+2\b")
    add("xml-entity-bomb", sheet_xml("studies", _xml_bomb), r"\bstudies\b")
    add("missing-sheet", book(lambda wb: wb.remove(wb["arms"])), r"\barms\b")
    add("whole-sheet-merge", sheet_xml("arms", lambda x: x.replace(
        b"</sheetData>", b'</sheetData><mergeCells count="1"><mergeCell ref="A2:XFD1048576"/></mergeCells>', 1)),
        r"\barms\s+2\b.*span")
    add("text-in-numeric", book_cell("outcomes", "K2", "many"), table("outcomes", 2, "n"))
    add("date-in-numeric", book_cell("studies", "C2", __import__("datetime").date(2020, 1, 1)),
        table("studies", 2, "year"))
    add("formula-without-saved-value", book_cell("arms", "G2", "=20*2"), r"\barms\s+2\b")
    add("bad-code", book_cell("arms", "D2", "treatment"), table("arms", 2, "arm_role"))
    add("required-blank", book_cell("studies", "H2", None), table("studies", 2, "inclusion_status"))
    add("duplicate-header", book_cell("studies", "Q1", "study_id"), table("studies", 1, "study_id"))
    add("unknown-header", book_cell("arms", "M1", "colour"), table("arms", 1, "colour"))
    add("value-without-header", book_cell("arms", "AZ3", "stray"), r"\barms\s+3\b")
    add("negative-n", book_cell("outcomes", "K3", -5), table("outcomes", 3, "n"))
    add("folder-named-like-it", folder_instead(FORM), r"studies\.csv|missing file|folder")
    return c


# ------------------------------------------------------------------------------------ analysis specs
SPEC_VALID = ("analyses:\n- id: length_of_stay\n  label: Length of stay\n  kind: meta-analysis\n"
              "  outcome: length_of_stay\n")


def _spec(extra: str = "", *, replace: tuple[str, str] | None = None) -> str:
    text = SPEC_VALID + extra
    if replace is not None:
        assert replace[0] in text, replace
        text = text.replace(*replace)
    return text


def _spec_cases() -> list[Case]:
    c = []

    def add(kind, damage, where, file="analyses.yaml"):
        c.append(Case(f"spec-{kind}", "spec", damage, (RUN,), file, where))

    def text(kind, content, where):
        add(kind, write(SPEC, content), where)

    add("latin1", write(SPEC, SPEC_VALID.replace("Length of stay", "L\xe9ngth").encode("latin-1")), line(3))
    add("folder-named-like-a-spec", folder_instead("analyses/x.yaml"), r"folder", "x.yaml")
    add("binary", write(SPEC, bytes(range(256))), line(2))  # 0x80 follows the 0x0a
    add("utf16", write(SPEC, SPEC_VALID.encode("utf-16")), line(1))
    text("empty", "", r"empty")
    text("comment-only", "# nothing here\n", r"empty")
    text("alias-bomb", 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nanalyses: *c\n', line(2))
    text("alias-in-analysis", _spec("- &x {id: b, label: B, kind: meta-analysis, outcome: length_of_stay}\n- *x\n"),
         line(7))
    text("merge-key-alias", _spec("- <<: *missing\n"), line(6))
    text("duplicate-top-key", _spec("analyses: []\n"), line(6))
    text("duplicate-key-in-analysis", _spec(replace=("  kind: meta-analysis\n", "  kind: meta-analysis\n  kind: x\n")),
         line(5))
    text("too-large", "# " + "x" * 2_100_000 + "\n" + SPEC_VALID, r"limit")
    text("tab-indentation", SPEC_VALID.replace("  label", "\tlabel"), line(3))
    text("unclosed-bracket", "analyses: [\n", line(2))
    text("unclosed-quote", _spec(replace=("label: Length of stay", 'label: "Length of stay')), line(6))  # found at the end
    text("top-level-list", "- id: x\n", r"analyses")
    text("top-level-text", "analyses\n", r"analyses")
    text("extra-top-key", _spec("notes: hi\n"), line(6))
    text("analyses-not-a-list", "analyses: {id: x}\n", line(1))
    text("analysis-not-a-mapping", "analyses:\n- just text\n", r"analysis 1")
    text("unknown-key", _spec(replace=("  kind:", "  colour: red\n  kind:")), line(4))
    text("missing-outcome", _spec(replace=("  outcome: length_of_stay\n", "")), line(2))
    text("id-not-text", _spec(replace=("id: length_of_stay", "id: [1, 2]")), line(2))
    text("label-empty", _spec(replace=("label: Length of stay", "label: ''")), line(3))
    text("bad-kind", _spec(replace=("kind: meta-analysis", "kind: network")), line(4))
    text("unknown-outcome", _spec(replace=("outcome: length_of_stay", "outcome: happiness")), line(5))
    text("comparator-not-declared", _spec("  comparator: active\n"), line(6))
    text("window-not-declared", _spec("  window: short\n"), line(6))
    text("timepoint-negative", _spec("  timepoint: -3\n"), line(6))
    text("timepoint-text", _spec("  timepoint: soon\n"), line(6))
    text("group-empty", _spec("  group: ''\n"), line(6))
    text("exclude-outliers-text", _spec("  exclude_outliers: perhaps\n"), line(6))
    text("model-not-mapping", _spec("  model: REML\n"), r"model")
    text("model-unknown-key", _spec("  model: {method: REML, colour: red}\n"), r"model")
    text("model-bad-method", _spec("  model: {method: XYZ}\n"), r"model\.method")
    text("model-bad-test", _spec("  model: {test: chi}\n"), r"model\.test")
    text("model-level-150", _spec("  model: {level: 150}\n"), r"model\.level")
    text("model-level-bool", _spec("  model: {level: true}\n"), r"model\.level")
    text("filters-not-mapping", _spec("  filters: [a]\n"), r"filters")
    text("unknown-filter", _spec("  filters: {colour: red}\n"), r"filter")
    text("moderators-on-meta-analysis", _spec("  moderators: [{name: x, column: year}]\n"), line(6))
    text("meta-regression-without-moderators", _spec(replace=("kind: meta-analysis", "kind: meta-regression")),
         r"moderators")
    text("moderator-undeclared", _spec("  moderators: [colour]\n", replace=("kind: meta-analysis",
                                                                           "kind: meta-regression")), r"moderator")
    text("source-not-text", _spec("  source: [1]\n"), line(6))
    text("published-as-not-list", _spec("  published_as: x\n"), line(6))
    text("duplicate-id-in-file", _spec("- id: length_of_stay\n  label: Again\n  kind: meta-analysis\n"
                                       "  outcome: length_of_stay\n"), r"length_of_stay")
    add("duplicate-id-across-files", write("analyses/more.yaml", SPEC_VALID), r"also declared in analyses\.yaml",
        "more.yaml")
    add("no-spec-files", remove(SPEC), r"no analysis specs", "analyses")
    return c


# ------------------------------------------------------------------------------------ instrument registry
REGISTRY_VERBS = (VALIDATE, RUN, TEMPLATE)
ENTRY = ("- id: length_of_stay-as-reported\n  name: Length of stay\n  outcome: length_of_stay\n"
         "  minimum: null\n  maximum: null\n  higher_is_worse: true\n  rank: 1\n")


def _registry_cases() -> list[Case]:
    c = []

    def add(kind, damage, where, file="instruments.yaml", verbs=REGISTRY_VERBS):
        c.append(Case(f"registry-{kind}", "registry", damage, verbs, file, where))

    def text(kind, content, where):
        add(kind, write(REGISTRY, content), where)

    add("binary", write(REGISTRY, b"\x00\x01\x02\xff\xfe" * 20), line(1))
    add("latin1", write(REGISTRY, ENTRY.replace("Length", "L\xe9ngth").encode("latin-1")), line(2))
    add("folder-named-like-it", folder_instead(REGISTRY), r"folder")
    text("not-a-list", "id: x\n", r"expected a list")
    text("entry-not-mapping", "- just text\n", r"instrument #1")
    text("missing-field", ENTRY.replace("  higher_is_worse: true\n", ""), r"line 1, instrument #1")
    text("unknown-field", ENTRY + "  colour: red\n", line(8))
    text("undeclared-outcome", ENTRY.replace("outcome: length_of_stay", "outcome: happiness"), line(3))
    text("higher-is-worse-text", ENTRY.replace("higher_is_worse: true", "higher_is_worse: often"), line(6))
    text("minimum-text", ENTRY.replace("minimum: null", "minimum: low"), line(4))
    text("minimum-infinite", ENTRY.replace("minimum: null", "minimum: -.inf"), line(4))
    text("minimum-not-below-maximum", ENTRY.replace("minimum: null", "minimum: 10").replace("maximum: null",
                                                                                             "maximum: 5"), line(4))
    text("rank-text", ENTRY.replace("rank: 1", "rank: first"), line(7))
    text("name-a-list", ENTRY.replace("name: Length of stay", "name: [a, b]"), line(2))
    text("id-empty", ENTRY.replace("id: length_of_stay-as-reported", "id: ''"), line(1))
    text("duplicate-id", ENTRY + ENTRY, line(8))
    text("duplicate-key", ENTRY.replace("  rank: 1\n", "  rank: 1\n  rank: 2\n"), line(8))
    text("alias-bomb", "- &a {id: a}\n- *a\n", line(2))
    text("yaml-syntax", "- id: [x\n", line(2))
    text("too-large", "# " + "x" * 2_100_000 + "\n", r"limit")
    return c


# ------------------------------------------------------------------------------------ review.yaml
REVIEW_VERBS = (RUN, VALIDATE)


def _review_cases() -> list[Case]:
    c = []

    def add(kind, damage, where, file="review.yaml", verbs=REVIEW_VERBS):
        c.append(Case(f"review-{kind}", "review", damage, verbs, file, where))

    add("latin1", edit_bytes("review.yaml", lambda b: b.replace(b"title: Hardening corpus",
                                                                "title: H\xe4rdening".encode("latin-1"))),
        r"line \d+")
    add("binary", write("review.yaml", bytes(range(256))), line(2))
    add("folder-named-like-it", folder_instead("review.yaml"), r"a folder, not the project file")
    add("duplicate-key", edit("review.yaml", lambda t: t + "title: Again\n"), r"line \d+: duplicate key 'title'")
    add("alias", edit("review.yaml", lambda t: t.replace("title: Hardening corpus", "title: &t Hardening corpus")
                      + "citation: *t\n"), r"line \d+: aliases")
    add("syntax", edit("review.yaml", lambda t: t + "outcomes: [\n"), r"line \d+")
    add("unknown-top-key", edit("review.yaml", lambda t: t + "colour: red\n"), r"line \d+")
    add("bad-measure", edit("review.yaml", lambda t: t.replace("measure: SMD", "measure: OR")), r"line \d+")
    add("outcome-without-id", edit("review.yaml", lambda t: t.replace("- id: length_of_stay\n  label",
                                                                      "- label")), r"line \d+")
    add("outcomes-not-list", edit("review.yaml", lambda t: re.sub(r"outcomes:\n- id: length_of_stay\n  label: "
                                                                  r"Length of stay\n  benefit: lower\n",
                                                                  "outcomes: length_of_stay\n", t)), r"line \d+")
    add("empty", write("review.yaml", ""), r"the project file is empty")
    return c


# ------------------------------------------------------------------------------------ searches/ and audit
SEARCH_VERBS = (SEARCH_STATUS, RUN)


def _screening(column: str, value: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / "searches" / "screening.csv"
        rows = _csv_rows(path)
        rows[1][rows[0].index(column)] = value
        _write_rows(path, rows)
    return damage


def _search_cases() -> list[Case]:
    c = []

    def add(kind, damage, file, where, verbs=SEARCH_VERBS):
        c.append(Case(f"search-{kind}", "search", damage, verbs, file, where))

    add("screening-bad-decision", _screening("ta_r1", "maybe"), "screening.csv", r"row 2")
    add("screening-latin1", edit_bytes("searches/screening.csv", lambda b: b.replace(b"Roe B", b"R\xf6e B")),
        "screening.csv", r"line 2|row 2")
    add("screening-extra-field", edit("searches/screening.csv", lambda t: t.replace("\n", ",extra\n", 2)
                                      .replace(",extra\n", "\n", 1)), "screening.csv", r"line 2|row 2")
    add("imports-log-bad-count", edit("searches/imports.csv", lambda t: t.replace(",2,utf-8", ",two,utf-8")),
        "imports.csv", r"line 2|row 2")
    add("records-file-missing", lambda root: [p.unlink() for p in (root / "searches" / "records").glob("*.csv")],
        "imports.csv", r"line 2: the records file .* is missing", verbs=(("search", "dedupe"),))
    return c


def _audit_cases() -> list[Case]:
    head = "label,estimate,ci_lb,ci_ub,k,i2,q,p\n"
    rows = ["A,-0.28,-0.42,-0.14,32,45,56.4,0.001", "B,0.10,-0.05,0.25,5,0,3.1,0.19"]
    c = []

    def add(kind, text, n):
        content = text if isinstance(text, bytes) else text.encode("utf-8")
        c.append(Case(f"audit-{kind}", "audit", write(REPORTED, content), (AUDIT_REPORTED,), REPORTED, rf":{n}:"))

    add("extra-field", head + rows[0] + ",x\n" + rows[1] + "\n", 2)
    add("decimal-comma", head + rows[0] + '\n"B","0,10",-0.05,0.25,5,0,3.1,0.19\n', 3)
    add("i2-150", head + rows[0].replace(",45,", ",150,") + "\n", 2)
    add("p-1.5", head + rows[1].replace("0.19", "1.5") + "\n", 2)
    add("negative-q", head + rows[1].replace("3.1", "-3.1") + "\n", 2)
    add("k-zero", head + rows[1].replace(",5,", ",0,") + "\n", 2)
    add("latin1", (head + "Caf\xe9," + rows[0][2:] + "\n").encode("latin-1"), 2)
    add("unknown-column", head.replace(",p\n", ",colour\n") + rows[0] + "\n", 1)
    return c


CASES: list[Case] = (_csv_file_cases() + _csv_cell_cases() + _xlsx_cases() + _spec_cases() + _registry_cases()
                     + _review_cases() + _search_cases() + _audit_cases())


def copy_base(base: Path, root: Path) -> Path:
    shutil.copytree(base, root, symlinks=True)
    return root
