"""The built book, read in a real browser (Debian chromium via selenium, 1400 px wide): every page loads without
console errors, no image or internal link is broken, each main contrast has its forest plot, and a study named
`<img src=x onerror=alert(1)>` in a sheet shows as text. A screenshot of a contrast page is saved to
tests/artifacts/.

As a reader reads it: no page is taller than `MAX_PAGE_HEIGHT`, no visible text holds a literal "\\n", no
count column of a table shows a decimal ("32.000"), no table is wider than the text column, no display
equation is cut off, and the book's search finds pages when the book is opened from disk (file://)."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
XSS_NAME = "<img src=x onerror=alert(1)>"  # the study the book_html fixture adds (conftest.py)


pytestmark = pytest.mark.browser

CONTRASTS = [a["id"] for a in yaml.safe_load((REPO / "analyses" / "main.yaml").read_text())["analyses"]]
#: No page taller than this at 1400 px (a reader scrolls; the GRADE page once measured ~66,000 px).
MAX_PAGE_HEIGHT = 25_000
#: A table may be this much wider than the text column (borders, rounding) before it counts as too wide.
WIDTH_TOLERANCE = 1.05
#: Headings of columns that hold counts (whole numbers): k, n, n randomised, count, participants, studies ...
#: (a trailing remark in brackets, as in "k (published)", is ignored).
COUNT_HEADING = re.compile(r"^(k|n|n[12]|n_\w+|n [\w ]+|[\w ]*\bcounts?|(number|no\.) of [\w ]+|[\w ]*participants"
                           r"|studies|trials|arms|records)(\s*[(\[].*[)\]])?$", re.IGNORECASE)
DECIMAL = re.compile(r"^[-−]?\d[\d,]*\.\d+$")


def _pages(book_html):
    skip = {"_static", "_sources", "_images"}
    return sorted(p.relative_to(book_html).as_posix() for p in book_html.rglob("*.html")
                  if not skip & set(p.relative_to(book_html).parts))


def _load(driver, url):
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.05)
    # MathJax typesets after load; wait until it says it is done (pages without math have no MathJax)
    driver.set_script_timeout(20)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false)); } else { done(true); }"
    )


def _broken_images(driver):
    driver.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
    for _ in range(100):
        pending = driver.execute_script("return [...document.images].filter(i => !i.complete).length")
        if not pending:
            break
        time.sleep(0.1)
    return driver.execute_script(
        "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


def _ids(url, cache):
    if url not in cache:
        parser = _Ids()
        with urllib.request.urlopen(url, timeout=10) as resp:
            parser.feed(resp.read().decode("utf-8", "replace"))
        cache[url] = parser.ids
    return cache[url]


def test_the_book_has_every_page(book_html):
    pages = set(_pages(book_html))
    for page in ("index.html", "methods.html", "studies.html", "risk_of_bias.html", "sensitivity.html",
                 "metaregression.html", "grade.html", "reproduced.html", "guidelines.html", "validation.html",
                 "replica.html", "api.html"):
        assert page in pages, page
    for cid in CONTRASTS:
        assert f"contrast_{cid}.html" in pages


def test_every_page_loads_without_console_errors_or_broken_images(book_html, book_url, driver):
    problems = []
    driver.get_log("browser")  # drop anything logged before the first page
    for page in _pages(book_html):
        _load(driver, f"{book_url}/{page}")
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            problems.append(f"{page}: console errors {errors}")
        broken = _broken_images(driver)
        if broken:
            problems.append(f"{page}: broken images {broken}")
    assert not problems, "\n".join(problems)


def test_no_internal_link_is_broken(book_html, book_url, driver):
    checked: dict[str, int] = {}
    id_cache: dict[str, set] = {}
    problems = []
    for page in _pages(book_html):
        _load(driver, f"{book_url}/{page}")
        hrefs = driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for href in set(hrefs):
            if not href.startswith(book_url):
                continue
            base, _, frag = href.partition("#")
            if base not in checked:
                try:
                    with urllib.request.urlopen(base, timeout=10) as resp:
                        checked[base] = resp.status
                except urllib.error.HTTPError as exc:
                    checked[base] = exc.code
            if checked[base] != 200:
                problems.append(f"{page}: {href} -> HTTP {checked[base]}")
            elif frag and base.endswith(".html"):
                if urllib.parse.unquote(frag) not in _ids(base, id_cache):
                    problems.append(f"{page}: {href} -> no element with id {frag!r}")
    assert checked, "no internal links found at all"
    assert not problems, "\n".join(sorted(set(problems)))


def test_each_contrast_page_shows_its_forest_plot_and_a_screenshot_is_saved(book_url, driver):
    for cid in CONTRASTS:
        _load(driver, f"{book_url}/contrast_{cid}.html")
        forests = driver.execute_script(
            "return [...document.images].filter(i => /forest/.test(i.src) && i.naturalWidth > 0).length")
        assert forests >= 1, f"contrast_{cid}.html has no forest plot"
    _load(driver, f"{book_url}/contrast_{CONTRASTS[0]}.html")
    driver.execute_script("[...document.images].find(i => /forest/.test(i.src)).scrollIntoView()")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"contrast_{CONTRASTS[0]}.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_a_study_named_like_markup_shows_as_text(book_url, driver):
    _load(driver, f"{book_url}/studies.html")
    body = driver.find_element("tag name", "body").text
    assert XSS_NAME in body
    injected = driver.execute_script(
        "return [...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x').length")
    assert injected == 0
    assert re.search(r"onerror", driver.page_source) and "&lt;img src=x onerror=alert(1)&gt;" in driver.page_source


# ----------------------------------------------------------------------------- as a reader reads it
def _page_urls(book_html, book_url):
    return [(page, f"{book_url}/{page}") for page in _pages(book_html)]


def test_no_page_is_taller_than_a_reader_scrolls(book_html, book_url, driver):
    heights = {}
    for page, url in _page_urls(book_html, book_url):
        _load(driver, url)
        heights[page] = driver.execute_script("return document.documentElement.scrollHeight")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-heights.txt").write_text("".join(f"{h:>8} {p}\n" for p, h in sorted(heights.items())))
    tall = {p: h for p, h in heights.items() if h > MAX_PAGE_HEIGHT}
    assert not tall, f"pages taller than {MAX_PAGE_HEIGHT:,} px at 1400 px wide: {tall}"


#: The visible text of the article, without code and equations (where a backslash is at home).
_VISIBLE_TEXT = """
const art = document.querySelector('article.bd-article') || document.body;
const copy = art.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight, mjx-container, .math, script, style').forEach(e => e.remove());
document.body.appendChild(copy);
copy.style.position = 'absolute'; copy.style.left = '-99999px';
const text = copy.innerText;
copy.remove();
return text;
"""


def test_no_visible_text_holds_a_literal_backslash_n(book_html, book_url, driver):
    problems = []
    for page, url in _page_urls(book_html, book_url):
        _load(driver, url)
        text = driver.execute_script(_VISIBLE_TEXT)
        for m in re.finditer(r"\\n", text):
            problems.append(f"{page}: ...{text[max(0, m.start() - 60):m.end() + 40]!r}...")
    assert not problems, "\n".join(problems[:40])


_TABLES = """
const art = document.querySelector('article.bd-article') || document.body;
art.querySelectorAll('details').forEach(d => { d.open = true; });
const column = art.clientWidth;
return [...art.querySelectorAll('table')].map((t, i) => {
  const rows = [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim()));
  const head = t.tHead && t.tHead.rows.length ? t.tHead.rows.length : 1;
  const wrap = t.closest('.me-table-wrap, figure, details');
  const named = wrap && wrap.querySelector('.me-caption, figcaption, summary');
  const cap = t.caption ? t.caption.innerText : named ? named.innerText : (wrap && wrap.id) || '';
  return {i, width: t.scrollWidth, column, head, rows, caption: (cap || '').slice(0, 80)};
});
"""


def test_no_count_column_shows_a_decimal(book_html, book_url, driver):
    problems = []
    for page, url in _page_urls(book_html, book_url):
        _load(driver, url)
        for t in driver.execute_script(_TABLES):
            rows = t["rows"]
            if len(rows) <= t["head"]:
                continue
            heading = rows[t["head"] - 1]
            for j, name in enumerate(heading):
                if not COUNT_HEADING.match(" ".join(name.split())):
                    continue
                bad = [r[j] for r in rows[t["head"]:] if j < len(r) and DECIMAL.match(r[j])]
                if bad:
                    problems.append(f"{page}, table {t['i']} ({t['caption']!r}), column {name!r}: {bad[:5]}")
    assert not problems, "\n".join(problems)


def test_no_table_is_wider_than_the_text_column(book_html, book_url, driver):
    problems = []
    for page, url in _page_urls(book_html, book_url):
        _load(driver, url)
        for t in driver.execute_script(_TABLES):
            if t["width"] > WIDTH_TOLERANCE * t["column"]:
                problems.append(f"{page}, table {t['i']} ({t['caption']!r}): {t['width']} px in a "
                                f"{t['column']} px column")
    assert not problems, "\n".join(problems)


def test_no_display_equation_is_cut_off(book_html, book_url, driver):
    problems = []
    for page, url in _page_urls(book_html, book_url):
        _load(driver, url)
        for eq in driver.execute_script(
                "return [...document.querySelectorAll('mjx-container[display=\"true\"]')]"
                ".map(m => [m.scrollWidth, m.clientWidth, m.textContent.slice(0, 40)])"):
            if eq[0] > eq[1] + 2:
                problems.append(f"{page}: an equation needs {eq[0]} px in {eq[1]} px ({eq[2]!r})")
    _load(driver, f"{book_url}/methods.html")
    shown = driver.execute_script("return document.querySelectorAll('mjx-container[display=\"true\"]').length")
    assert shown >= 3, "the methods page shows no typeset display equations (MathJax did not run?)"
    assert not problems, "\n".join(problems)


def _search_from_disk(driver, book_html, query):
    driver.get_log("browser")
    driver.get(f"{(book_html / 'search.html').as_uri()}?q={urllib.parse.quote(query)}")
    for _ in range(100):
        found = driver.execute_script(
            "return [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href)")
        status = driver.execute_script(
            "const s = document.querySelector('#search-results .search-summary'); return s ? s.innerText : ''")
        if found or status:
            break
        time.sleep(0.1)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return found, status, errors


def test_search_finds_pages_when_the_book_is_opened_from_disk(book_html, driver):
    found, status, errors = _search_from_disk(driver, book_html, "heterogeneity")
    assert not errors, errors
    assert any(u.split("#")[0].endswith("/methods.html") for u in found), (status, found)
    # the text of a table (a study in the studies table), not only prose
    found, status, errors = _search_from_disk(driver, book_html, "Apeldoorn")
    assert any(u.split("#")[0].endswith("/studies.html") for u in found), (status, found)
    # a query nothing matches says so
    found, status, errors = _search_from_disk(driver, book_html, "qwxzyv")
    assert not found and "No page" in status
    # the reader's way: type into the search field of a page, submit, follow the first result
    driver.get((book_html / "index.html").as_uri())
    driver.execute_script("const f = document.querySelector('form.bd-search');"
                          "f.querySelector('input[name=q]').value = 'optimal information size'; f.submit();")
    for _ in range(100):
        links = driver.find_elements("css selector", "#search-results ul.search li a")
        if links:
            break
        time.sleep(0.1)
    assert links, driver.find_element("id", "search-results").text
    target = links[0].get_attribute("href")
    links[0].click()
    assert driver.current_url.startswith("file://") and driver.current_url.split("#")[0] == target.split("#")[0]
    assert "optimal information size" in driver.find_element("tag name", "body").text.lower()
