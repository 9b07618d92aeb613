"""Large exports are streamed: peak Python memory (tracemalloc) while importing stays far below the
file's size. A 10 MB export is traced with tracemalloc; the 100 MB export of the issue is measured by
the peak resident memory of a fresh process."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from search_exports import sha256

from metaexercise.searches.importer import import_exports
from metaexercise.searches.store import SearchFolder

ABSTRACT = ("Background: individualised exercise is one option for chronic non-specific low back pain. "
            "Methods: adults were randomised to tailored or general exercise for eight weeks. ") * 8


def write_big_ris(path: Path, megabytes: int) -> int:
    """A synthetic RIS export of about `megabytes` MB (synthetic replica — not real records); returns the
    number of records written. Written in blocks so the test itself stays memory-light."""
    target = megabytes * 1_000_000
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        while fh.tell() < target:
            block = []
            for _ in range(500):
                count += 1
                block.append(
                    f"TY  - JOUR\nTI  - Tailored exercise trial number {count} in chronic low back pain\n"
                    f"AU  - Author{count % 977}, A.\nAU  - Second, B.\nPY  - {1990 + count % 35}\n"
                    f"JO  - Journal {count % 53}\nDO  - 10.5555/synthetic.{count}\nAB  - {ABSTRACT}\n"
                    "ER  - \n\n")
            fh.write("".join(block))
    return count


def _import_peak(tmp_path: Path, megabytes: int) -> tuple[int, int, int]:
    export = tmp_path / "big.ris"
    n = write_big_ris(export, megabytes)
    digest = sha256(export)
    folder = SearchFolder(tmp_path / "searches")
    tracemalloc.start()
    try:
        imported = import_exports(folder, [export], database="Embase", search_date="2026-11-01")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sha256(export) == digest  # the export is only read
    return n, imported[0].records, peak


def test_a_10_mb_export_streams_with_bounded_memory(tmp_path):
    n, imported, peak = _import_peak(tmp_path, 10)
    print(f"10 MB export: {n} records, peak traced memory {peak / 1e6:.2f} MB")
    assert imported == n
    assert peak < 5_000_000  # far below the 10 MB file: records are never all held in memory


_CHILD = """
import resource, sys
from pathlib import Path
from metaexercise.searches.importer import import_exports
from metaexercise.searches.store import SearchFolder
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
imported = import_exports(SearchFolder(Path(sys.argv[2])), [Path(sys.argv[1])], database="Embase", search_date="2026-11-01")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(imported[0].records, (after - before) * 1024)
"""


@pytest.mark.slow
def test_a_100_mb_export_streams_with_bounded_memory(tmp_path):
    """The 100 MB export of the issue, measured by the peak resident memory of a fresh process (tracemalloc
    would triple the run time): the import adds a few MB to the process, not the file's 100 MB."""
    export = tmp_path / "big.ris"
    n = write_big_ris(export, 100)
    digest = sha256(export)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(export), str(tmp_path / "searches")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    imported, growth = (int(x) for x in out.stdout.split())
    print(f"100 MB export: {n} records, peak resident memory grew by {growth / 1e6:.1f} MB")
    assert imported == n
    assert growth < 20_000_000  # a fifth of the file: records are never all held in memory
    assert sha256(export) == digest  # the export is only read
