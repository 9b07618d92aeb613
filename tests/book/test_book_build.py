"""`metaexercise book` as a build tool: a rebuild with nothing changed is a small fraction of a cold build (the
analyses, the pages and Sphinx are all skipped), a changed results file re-executes exactly the pages that read
it, the Sphinx log is quiet, and the pieces behind it (the page cache, the analyses' manifest check, the tree
sync, the search index, the server). Also what the build writes onto the pages: "How to cite" from
CITATION.cff (APA and BibTeX), the methods page's optimal information size as the code computes it, and the
guidelines page's words as its numbers say.

The build-level tests use the browser tests' session build (conftest.py: a cold build of a project copy)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from metaexercise.publish.book import (
    _sync_tree,
    analyses_state,
    input_files,
    run_pages,
    serve_book,
    write_search_index,
)
from metaexercise.publish.generate import citation_markdown, citation_texts
from metaexercise.review.project import Project

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
#: A rebuild with nothing changed may take at most this share of the cold build.
WARM_SHARE = 0.2


# ----------------------------------------------------------------------------- how to cite
def test_the_citation_is_formatted_from_citation_cff():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    apa, bib = citation_texts(cff)
    assert len(apa) == len(bib) == 1 + len(cff.get("references", []))
    assert apa[0].startswith(f"metaexercise contributors. ({str(cff['date-released'])[:4]}). *metaexercise: ")
    assert f"(Version {cff['version']}) [Computer software]." in apa[0]
    assert bib[0].startswith(f"@software{{metaexercise{str(cff['date-released'])[:4]},")
    assert "author = {{metaexercise contributors}}" in bib[0] and f"version = {{{cff['version']}}}" in bib[0]
    review = apa[1]
    assert review.startswith("Fleckenstein, J., Flössel, P., Engel, T., Krempel, L., Stoll, J., Behrens, M., & "
                             "Niederer, D. (2022). Individualized exercise")
    assert "*The Journal of Pain*" in review
    assert "*Journal of Statistical Software*, *36*(3). <https://doi.org/10.18637/jss.v036.i03>" in apa[2]
    assert "author = {Fleckenstein, Johannes and Flössel, Philipp and" in bib[1]
    for entry in bib:
        assert entry.count("{") == entry.count("}"), entry


def test_a_preferred_citation_comes_first_and_text_is_escaped():
    cff = {"cff-version": "1.2.0", "title": "tool_kit", "version": "2", "date-released": "2024-03-01",
           "authors": [{"name": "The Team"}],
           "preferred-citation": {"type": "article", "title": "A 100% *new* method_", "journal": "J Stat",
                                  "volume": 7, "issue": 2, "start": 10, "end": 20, "year": 2023,
                                  "doi": "10.1/x_y", "authors": [{"family-names": "Doe", "given-names": "Mary-Ann"},
                                                                 {"family-names": "Roe", "given-names": "J. Peter",
                                                                  "name-particle": "van"}]}}
    apa, bib = citation_texts(cff)
    assert apa[0] == (r"Doe, M.-A., & van Roe, J. P. (2023). A 100% \*new\* method\_. *J Stat*, *7*(2), 10–20. "
                      "<https://doi.org/10.1/x_y>")
    assert bib[0].startswith("@article{doe2023,")
    assert r"title = {{A 100\% *new* method\_}}" in bib[0] and "pages = {10--20}" in bib[0]
    assert "author = {Doe, Mary-Ann and van Roe, J. Peter}" in bib[0]


def test_the_how_to_cite_section_says_so_without_a_citation_file(tmp_path):
    assert "no `CITATION.cff`" in citation_markdown(tmp_path / "CITATION.cff")
    (tmp_path / "CITATION.cff").write_text("title: [unclosed\n")
    assert "could not be read" in citation_markdown(tmp_path / "CITATION.cff")


# ----------------------------------------------------------------------------- the page cache
PAGE = """---
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# A page

```{code-cell} python3
import os
from pathlib import Path

import pandas as pd

from metaexercise.publish import pages as bp

with open(os.environ["PAGE_RUNS"], "a") as runs:  # outside the project: not an input
    runs.write("ran\\n")
frame = pd.read_csv(bp.project().results / "x.csv")
bp.table(frame, "x_table", "The x values")
```
"""


def _run(project: Project, cache: Path, page: str = PAGE) -> tuple[tuple, tuple]:
    src = project.root / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    (src / "page.md").write_text(page)
    shutil.rmtree(project.book / "generated", ignore_errors=True)
    done = run_pages(src, project, echo=lambda s: None, cache=cache)
    assert (src / "page.ipynb").is_file() and not (src / "page.md").exists()
    assert (project.book / "generated" / "tables" / "x_table.csv").is_file()  # written, or restored
    return done.executed, done.cached


def test_a_page_runs_again_exactly_when_what_it_read_changed(tmp_path, monkeypatch):
    project = Project(tmp_path / "project")
    project.book.mkdir(parents=True)
    project.results.mkdir()
    (project.results / "x.csv").write_text("value\n1\n")
    (project.results / "y.csv").write_text("other\n1\n")
    runs = tmp_path / "runs.txt"
    monkeypatch.setenv("PAGE_RUNS", str(runs))
    cache = tmp_path / "cache"

    assert _run(project, cache) == (("page.md",), ())
    nb = (project.root / "src" / "page.ipynb").read_bytes()
    assert _run(project, cache) == ((), ("page.md",))  # nothing changed: restored, not run
    assert (project.root / "src" / "page.ipynb").read_bytes() == nb
    meta = json.loads((cache / "page" / "meta.json").read_text())
    assert "results/x.csv" in meta["reads"] and "results/y.csv" not in meta["reads"]
    assert meta["written"] == ["tables/x_table.csv"]

    (project.results / "y.csv").write_text("other\n2\n")  # a results file the page does not read
    assert _run(project, cache) == ((), ("page.md",))
    (project.results / "x.csv").write_text("value\n2\n")  # one it reads
    assert _run(project, cache) == (("page.md",), ())
    cells = nbformat.read(project.root / "src" / "page.ipynb", as_version=4).cells
    assert "<td>2</td>" in cells[-1].outputs[0].data["text/html"]
    (project.results / "new.csv").write_text("a\n")  # a new file (a page may look for it without opening)
    assert _run(project, cache) == (("page.md",), ())
    assert _run(project, cache, PAGE.replace("# A page", "# A changed page")) == (("page.md",), ())
    assert runs.read_text().count("ran") == 4


def test_sync_rewrites_only_the_files_whose_bytes_changed(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    assert sorted(_sync_tree(src, dst)) == ["a.txt", "sub/b.txt"]
    before = (dst / "a.txt").stat().st_mtime_ns
    (src / "sub" / "b.txt").write_text("B")
    (src / "c.txt").write_text("c")
    (dst / "stale.txt").write_text("gone")
    assert sorted(_sync_tree(src, dst)) == ["c.txt", "stale.txt", "sub/b.txt"]
    assert (dst / "a.txt").stat().st_mtime_ns == before and not (dst / "stale.txt").exists()
    assert (dst / "sub" / "b.txt").read_text() == "B"
    assert _sync_tree(src, dst) == []


def test_the_inputs_are_the_ones_the_runner_lists_in_its_manifest():
    from metaexercise.commands.search_counts import count_search_update
    from metaexercise.review import exhibits
    from metaexercise.review.run import _inputs, extraction_folder

    project = Project(REPO)
    for source, counter in (("real", count_search_update), ("real", None), ("replica", None)):
        folder = extraction_folder(project, source)
        expected = _inputs(project, folder, *exhibits.input_folders(project, source, counter))
        assert input_files(project, source, counter) == expected, source


@pytest.mark.slow
def test_the_analyses_are_skipped_only_while_the_manifest_describes_the_project(tmp_path):
    from metaexercise.review.run import run_project

    project = Project(tmp_path / "project")
    for name in ("analyses", "extraction"):
        shutil.copytree(REPO / name, project.root / name)
    shutil.copy2(REPO / "review.yaml", project.root / "review.yaml")
    assert analyses_state(project, "real") is None  # no results yet
    run_project(project, source="real", progress=False)
    state = analyses_state(project, "real")
    assert state is not None and analyses_state(project, "real") == state
    studies = project.extraction / "studies.csv"
    text = studies.read_text()
    studies.write_text(text + "\n")
    assert analyses_state(project, "real") is None  # an input changed
    studies.write_text(text)
    assert analyses_state(project, "real") == state
    forest = project.results / "forest.csv"
    forest.write_text(forest.read_text() + "\n")
    assert analyses_state(project, "real") is None  # an output was altered


# ----------------------------------------------------------------------------- search index, server
def test_the_search_index_holds_each_sections_text(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Studies &mdash; The book</title></head><body><nav>Menu text</nav>"
        "<article class='bd-article' role='main'><section id='studies'><h1>Studies<a class='headerlink'>#</a></h1>"
        "<p>Every <b>study</b> of the sheets.</p><img src='x.png' alt='x'><br>"
        "<table><tr><th>study</th></tr><tr><td>Apeldoorn 2012</td></tr></table>"
        "<section id='flow'><h2>PRISMA flow</h2><p>Records screened for <span class='math notranslate'>"
        "\\(\\delta = 0.2\\)</span></p><script>var no = 1;</script>"
        "<div class='math'>\\(x\\)</div></section><p>after the flow</p></section></article></body></html>")
    (tmp_path / "search.html").write_text("<article class='bd-article'><p>not indexed</p></article>")
    target = write_search_index(tmp_path)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("window.METAEXERCISE_SEARCH = ")
    entries = json.loads(text[text.index("["):text.rindex("]") + 1])
    assert entries == [
        {"page": "page.html", "anchor": "#studies", "title": "Studies", "page_title": "Studies",
         "text": "Every study of the sheets. study Apeldoorn 2012 after the flow"},
        {"page": "page.html", "anchor": "#flow", "title": "PRISMA flow", "page_title": "Studies",
         "text": "Records screened for delta = 0.2"}]


def test_serve_book_serves_the_html_on_localhost(tmp_path):
    (tmp_path / "index.html").write_text("<p>the book</p>")
    server = serve_book(tmp_path, port=0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as resp:
            assert resp.status == 200 and b"the book" in resp.read()
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- the session's build
def _need_root(book_built):
    if book_built.root is None:
        pytest.skip("a prebuilt book (METAEXERCISE_TEST_BOOK_HTML) has no project to rebuild")


def _executed(log: str) -> set[str]:
    return set(re.findall(r"^\s+page \d+ (\S+)\.md: ", log, flags=re.MULTILINE))


@pytest.mark.slow
def test_a_rebuild_with_nothing_changed_is_a_fraction_of_the_cold_build(book_built, rebuild):
    _need_root(book_built)
    index = book_built.html / "index.html"
    before = index.stat().st_mtime_ns
    seconds, proc = rebuild(book_built.root)
    log = proc.stdout + proc.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "book-build-times.txt").write_text(
        f"cold {book_built.seconds:.1f} s\nwarm (nothing changed) {seconds:.1f} s\n\n{log}")
    assert proc.returncode == 0, log[-3000:]
    assert not _executed(log) and re.search(r"pages: 0 executed, \d+ unchanged", log), log
    assert "Sphinx not run" in log and log.count("not run again") == 3, log
    assert index.stat().st_mtime_ns == before  # the HTML was left as it was
    assert seconds < WARM_SHARE * book_built.seconds, (
        f"warm rebuild {seconds:.1f} s vs cold {book_built.seconds:.1f} s")


@pytest.mark.slow
def test_a_changed_results_file_re_executes_the_pages_that_read_it(book_built, rebuild, tmp_path):
    _need_root(book_built)
    root = tmp_path / "project"
    shutil.copytree(book_built.root, root, symlinks=True)
    cache = root / "book" / "_build" / ".cache" / "pages"
    readers = {p.parent.name for p in cache.glob("*/meta.json")
               if "results/vas_published.csv" in json.loads(p.read_text())["reads"]}
    assert readers and "index" not in readers, readers
    path = root / "results" / "vas_published.csv"
    vas = pd.read_csv(path, dtype=str, keep_default_na=False)
    vas.loc[0, "vas_printed"] = "-0.97"
    vas.to_csv(path, index=False, lineterminator="\n")
    _, proc = rebuild(root, "--no-run")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert _executed(log) == readers, log
    assert "0.97" in (root / "book" / "_build" / "html" / "guidelines.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_sphinx_log_is_quiet_and_warnings_are_counted(book_built):
    _need_root(book_built)
    log = book_built.log
    for chatter in ("reading sources", "writing output", "[etoc]", "MdParserConfig", "build succeeded",
                    "Running Sphinx"):
        assert chatter not in log, chatter
    warned = [ln for ln in log.splitlines() if re.search(r"\bWARNING\b", ln)]
    if warned:
        assert re.search(rf"with {len(warned)} Sphinx warnings?", log), warned
    else:
        assert "Sphinx warning" not in log


# ----------------------------------------------------------------------------- what the pages say
@pytest.mark.slow
def test_how_to_cite_shows_formatted_text_and_bibtex_not_yaml(book_html):
    html = (book_html / "changelog.html").read_text(encoding="utf-8")
    assert "cff-version" not in html and "highlight-yaml" not in html
    assert "metaexercise contributors. (2026)." in html and "[Computer software]" in html
    assert "highlight-bibtex" in html and "@software" in html and "Fleckenstein, Johannes and" in html


@pytest.mark.slow
def test_the_methods_page_states_the_ois_as_the_code_computes_it(book_html):
    from metaexercise.review.grade import optimal_information_size

    html = (book_html / "methods.html").read_text(encoding="utf-8")
    assert r"\frac{4\,(z_{0.975} + z_{0.8})^2}{\delta^2}" in html and "participants in total" in html
    assert "N &lt; 400" not in html and "400" not in re.sub(r"<[^>]+>", " ", html).split("GRADE", 1)[-1][:3000]
    review = yaml.safe_load((REPO / "review.yaml").read_text(encoding="utf-8"))
    pain = next(o for o in review["outcomes"] if o["id"] == "pain")
    ois = optimal_information_size(pain["mid"]["value"] / pain["typical_sd"]["value"])
    assert f"<td>{ois:.0f}</td>" in html
    assert round(optimal_information_size(0.2)) == 785 and round(optimal_information_size(0.5)) == 126  # as printed


@pytest.mark.slow
def test_the_guidelines_words_follow_the_numbers(book_built, book_html):
    html = (book_html / "guidelines.html").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "both stay well below" not in text
    claims = re.findall(r"(reaches|is just below|is below|is well below) (?:the threshold|it) \((\d+)%", text)
    assert claims, text[-3000:]
    for word, pct in claims:
        pct = int(pct)
        expected = ("reaches" if pct >= 100 else "is just below" if pct >= 90 else "is below" if pct >= 50
                    else "is well below")
        assert word == expected or abs(pct - {"is just below": 90, "is below": 50}.get(word, pct)) <= 1, (word, pct)
    if book_built.root is not None:
        vas = pd.read_csv(book_built.root / "results" / "vas_published.csv", dtype=str, keep_default_na=False)
        if "clinically important" not in set(vas["verdict"]) and "probably meaningful" in set(vas["verdict"]):
            assert "none is clinically important" in text
        for verdict in set(vas["verdict"]) - {""}:
            assert verdict in text
