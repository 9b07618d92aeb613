"""`metaexercise audit --reported` reads its table strictly.

A corpus of malformed tables is generated from one valid table by code: each mutation must end with exit 2, a
message on stderr naming the file and the line (header = line 1) with `FILE:LINE:`, and no traceback. Valid
tables still pass, and `--fail-on-findings` turns error findings into exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metaexercise.commands.cli import main
from metaexercise.errors import SpecError
from metaexercise.review.audit import read_reported

HEADER = "label,estimate,ci_lb,ci_ub,k,i2,q,p,scale,source"
ROWS = [
    "A,-0.28,-0.42,-0.14,32,45,56.4,<.001,difference,x",
    "B,1.50,1.20,1.88,12,0,8.1,0.001,ratio,y",
    "C,0.10,-0.05,0.25,5,,,0.19,,z",
]
VALID = "\n".join([HEADER, *ROWS]) + "\n"


def _with_row(i: int, row: str) -> str:
    rows = list(ROWS)
    rows[i] = row
    return "\n".join([HEADER, *rows]) + "\n"


def _with_field(i: int, column: str, value: str) -> str:
    """The valid table with one field of row `i` (file line i + 2) replaced."""
    names = HEADER.split(",")
    fields = ROWS[i].split(",")
    fields[names.index(column)] = value
    return _with_row(i, ",".join(fields))


# (id, file text, line expected in the message, text expected in the message)
CORPUS: list[tuple[str, str, int, str]] = []


def _case(name: str, text: str, line: int, needle: str) -> None:
    CORPUS.append((name, text, line, needle))


# field counts: one more or one fewer field on each data line
for _i in range(len(ROWS)):
    _case(f"extra-field-row{_i}", _with_row(_i, ROWS[_i] + ",extra"), _i + 2, "field(s) but the header has 10")
    _case(f"missing-field-row{_i}", _with_row(_i, ROWS[_i].rsplit(",", 1)[0]), _i + 2, "column source")
_case("unquoted-decimal-comma", _with_field(0, "estimate", "-0,28"), 2, "field(s) but the header has 10")
# decimal commas / thousands separators, quoted so the field count is right
for _col, _value in [("estimate", '"-0,28"'), ("ci_ub", '"0,25"'), ("q", '"1,250"'), ("k", '"1,250"'),
                     ("p", '"0,19"')]:
    _i = 2 if _col in ("ci_ub", "p") else 0
    _case(f"decimal-comma-{_col}", _with_field(_i, _col, _value), _i + 2, "decimal comma")
# ranges
for _col, _value, _needle in [
    ("i2", "150", "I² (percent) must be [0, 100]"),
    ("i2", "-3", "I² (percent) must be"),
    ("i2", "100.5%", "I² (percent) must be"),
    ("p", "1.5", "a p value must be [0, 1]"),
    ("p", "-0.01", "a p value must be"),
    ("p", ">1", "a p value must be"),
    ("q", "-2.1", "Q must be >= 0"),
    ("k", "0", "k must be >= 1"),
    ("k", "-4", "k must be >= 1"),
    ("k", "3.5", "not a whole number"),
    ("k", ">10", "not a whole number"),
]:
    _case(f"range-{_col}-{_value}", _with_field(0, _col, _value), 2, f"column {_col}: ")
    CORPUS[-1] = (*CORPUS[-1][:3], _needle)
_case("ci-reversed", _with_field(2, "ci_lb", "0.30"), 4, "lower bound 0.30 > upper bound 0.25")
for _value in ("inf", "nan", "-Infinity", "1e400", "abc", "--1"):
    _case(f"not-finite-{_value}", _with_field(1, "estimate", _value), 3, "column estimate")
# header problems
_case("unknown-column", VALID.replace(",source", ",comment"), 1, "unknown column(s) ['comment']")
_case("repeated-column", VALID.replace(",source", ",p").replace(",x\n", ",.1\n").replace(",y\n", ",.1\n")
      .replace(",z\n", ",.1\n"), 1, "['p'] appear more than once")
_case("missing-column", "label,estimate,ci_lb\nA,1,0\n", 1, "missing column(s) ['ci_ub']")
_case("semicolon-separated", VALID.replace(",", ";").replace(".", ","), 1, "semicolon-separated")
_case("tab-separated", VALID.replace(",", "\t"), 1, "unknown column(s)")
_case("empty-file", "", 1, "empty file")
# structure
_case("unterminated-quote", _with_field(1, "source", '"open'), 3, "not valid CSV")
_case("nul-byte", _with_field(2, "source", "a\x00b"), 4, "NUL byte")
_case("empty-label", _with_field(1, "label", ""), 3, "empty label")
_case("repeated-label", _with_field(2, "label", "A"), 4, "'A' repeats row 2")
_case("empty-required", _with_field(2, "ci_ub", ""), 4, "column ci_ub: empty (required)")
_case("bad-scale", _with_field(0, "scale", "log"), 2, "column scale")
_case("ratio-not-positive", _with_field(1, "ci_lb", "0"), 3, "a ratio must be > 0")
_case("error-after-multiline-quote",
      VALID.replace(",x\n", ',"two\nlines"\n').replace("C,0.10", "C,0,10"), 5, "field(s)")


def test_the_corpus_is_large():
    assert len(CORPUS) >= 25
    assert len({name for name, *_ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "text", "line", "needle"), CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_table_exits_2_with_file_and_line(tmp_path, capsys, name, text, line, needle):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(text.encode("utf-8"))
    before = path.read_bytes()
    assert main(["audit", "--reported", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:{line}:" in err, err
    assert needle in err, err
    assert "Traceback" not in err
    assert path.read_bytes() == before
    with pytest.raises(SpecError):
        read_reported(path)


def test_not_utf8_is_located(tmp_path, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes(_with_field(1, "source", "caf\u00e9").encode("latin-1"))
    assert main(["audit", "--reported", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and "not UTF-8" in err and "Traceback" not in err


def test_subprocess_never_tracebacks(tmp_path):
    """The installed command, end to end, on a few of the corpus' tables."""
    for name, text, line, _needle in CORPUS[:: max(1, len(CORPUS) // 4)]:
        path = tmp_path / f"{name}.csv"
        path.write_bytes(text.encode("utf-8"))
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from metaexercise.commands.cli import main; sys.exit(main())",
             "audit", "--reported", str(path)],
            capture_output=True, text=True, check=False,
        )
        assert done.returncode == 2, (name, done.stderr)
        assert f"{path}:{line}:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        VALID.replace("\n", "\r\n"),
        "\ufeff" + VALID,
        VALID.replace(",x\n", ',"a, quoted, note"\n'),
        VALID + "\n\n",
        "label,estimate,ci_lb,ci_ub\nA,-0.28,-0.42,-0.14\n",
        " Label , Estimate ,CI_LB,ci_ub,note\nA, -0.28 ,-0.42,-0.14,\n",
        "label,estimate,ci_lb,ci_ub,i2,p,q,k\nA,0.1,0.0,0.2,100%,1,0,1\nB,0.1,0.0,0.2,0,0,0,2\n",
    ],
    ids=["plain", "crlf", "bom", "quoted-comma-in-text", "trailing-blank-lines", "required-only",
         "spaces-and-case", "range-edges"],
)
def test_valid_tables_still_pass(tmp_path, capsys, text):
    path = tmp_path / "ok.csv"
    path.write_bytes(text.encode("utf-8"))
    assert main(["audit", "--reported", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert isinstance(json.loads(out), list) and "Traceback" not in err
    assert main(["audit", "--reported", str(path), "--fail-on-findings"]) == 0


def test_valid_rows_are_read_with_their_printed_text(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text(VALID, encoding="utf-8")
    reg = read_reported(path)
    a = reg.get("A")
    assert a.k.text == "32" and a.i2.value == 45 and a.p.relation == "<" and a.estimate.decimals == 2
    assert reg.get("B").scale == "ratio"


def test_fail_on_findings_exits_1_only_for_error_findings(tmp_path, capsys):
    path = tmp_path / "t.csv"
    # B's estimate lies above its CI: an error finding
    path.write_text("label,estimate,ci_lb,ci_ub\nA,-0.28,-0.42,-0.14\nB,1.15,-1.56,-0.86\n", encoding="utf-8")
    assert main(["audit", "--reported", str(path)]) == 0
    assert main(["audit", "--reported", str(path), "--fail-on-findings"]) == 1
    assert main(["audit", "--reported", str(path), "--json", "--fail-on-findings"]) == 1
    out = capsys.readouterr().out
    assert "estimate_outside_ci" in out
    # an input error stays exit 2, with or without the option
    path.write_text("label,estimate,ci_lb,ci_ub,i2\nA,-0.28,-0.42,-0.14,150\n", encoding="utf-8")
    assert main(["audit", "--reported", str(path), "--fail-on-findings"]) == 2


def test_fail_on_findings_ignores_warnings(tmp_path, capsys):
    path = tmp_path / "w.csv"
    # estimate inside but far off the centre of its CI: a warning only
    path.write_text("label,estimate,ci_lb,ci_ub\nA,-0.40,-0.42,-0.14\n", encoding="utf-8")
    assert main(["audit", "--reported", str(path), "--json", "--fail-on-findings"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and {r["severity"] for r in records} == {"warning"}
