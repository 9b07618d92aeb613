"""Browser-test fixtures: Debian's chromium + chromedriver (installed with apt when missing), the book built
once per session into a temporary copy of the project that holds an extra study named
`<img src=x onerror=alert(1)>` (the repository's own extraction is never touched), served on localhost.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from metaexercise.extraction.schema import form
from metaexercise.review.declaration import load_review

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_ID = "xss2020"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)
# Generated folders stay behind (results/, replica/, book/_build/ ...): the copy builds from its sources.
_IGNORE = shutil.ignore_patterns(".git", "results", "replica", "_build", "generated", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", "artifacts", "*.egg-info", ".hypothesis", "_work")


def _apt_busy() -> bool:
    """Another apt or dpkg is running (never start a second one)."""
    names = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            names.add(comm.read_text().strip())
        except OSError:  # the process ended while we looked
            continue
    return bool(names & {"apt", "apt-get", "dpkg"})


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when missing (a fresh CI machine); never download a
    browser any other way (no Selenium Manager)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    while _apt_busy():
        time.sleep(5)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def add_xss_study(extraction: Path) -> None:
    """Append a study whose first author is an HTML payload to the copy's studies sheet (the columns of the
    copied project's form, from its review.yaml)."""
    path = extraction / "studies.csv"
    vocabulary = load_review(extraction.parent / "review.yaml").sheet_vocabulary()
    columns = list(form(vocabulary).sheet("studies").column_names)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else pd.DataFrame(columns=columns)
    row = {c: "" for c in frame.columns}
    row.update({"study_id": XSS_ID, "first_author": XSS_NAME, "year": "2020", "inclusion_status": "included",
                "synthetic": "false", "source": "https://example.org/xss-test-row",
                "notes": "browser test: this name must render as text"})
    frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    frame.to_csv(path, index=False, lineterminator="\n")


@dataclass(frozen=True)
class BookBuilt:
    """The session's book: the project copy it was built in, its HTML, the cold build's wall-clock seconds
    and log (None/"" for a prebuilt book given by METAEXERCISE_TEST_BOOK_HTML)."""

    root: Path | None
    html: Path
    seconds: float | None
    log: str


def build(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """`metaexercise book` on the project at `root` in a subprocess: (wall-clock seconds, the process)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "metaexercise", "book", "--project", str(root), *args],
                          capture_output=True, text=True)
    return time.perf_counter() - t0, proc


@pytest.fixture(scope="session")
def book_built(tmp_path_factory) -> BookBuilt:
    """Build the book once per session (cold: no results/, no caches) into a temporary project copy.
    METAEXERCISE_TEST_BOOK_HTML may point at an already built copy (for debugging the tests)."""
    prebuilt = os.environ.get("METAEXERCISE_TEST_BOOK_HTML")
    if prebuilt:
        return BookBuilt(None, Path(prebuilt), None, "")
    root = tmp_path_factory.mktemp("project") / "project"
    shutil.copytree(REPO, root, ignore=_IGNORE)
    add_xss_study(root / "extraction")
    seconds, proc = build(root)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "book-build.log").write_text(proc.stdout + proc.stderr + f"\nbuild seconds: {seconds:.1f}\n")
    assert proc.returncode == 0, f"book build failed; log in {ARTIFACTS / 'book-build.log'}:\n{proc.stderr[-4000:]}"
    return BookBuilt(root, root / "book" / "_build" / "html", seconds, proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def rebuild():
    """`build` (run `metaexercise book` on a project in a subprocess), for tests that build again."""
    return build


@pytest.fixture(scope="session")
def book_html(book_built) -> Path:
    """The built book's html folder."""
    return book_built.html


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def book_url(book_html):
    handler = functools.partial(_Quiet, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def driver(tmp_path_factory):
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
