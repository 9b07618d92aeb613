"""The built book, read in a real browser (Debian chromium via selenium): every page loads without console
errors, no image or internal link is broken, each main contrast has its forest plot, and a study named
`<img src=x onerror=alert(1)>` in a sheet shows as text. A screenshot of a contrast page is saved to
tests/artifacts/."""

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
