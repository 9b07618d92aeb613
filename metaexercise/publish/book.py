"""`metaexercise book`: run the analyses (the extraction, and the synthetic replica where review.yaml declares one;
`metaexercise.review.run`, which also audits the published numbers where a registry is declared), write the
book's pages and `_toc.yml` from the project (`metaexercise.publish.generate`), then build the HTML book with
Jupyter Book 1.x (Sphinx) into `book/_build/html`. A project with no analyses yet gets a book that says so.

Offline by design: Jupyter Book 1 builds with Sphinx from MyST notebooks, and MathJax is served from
`book/_static/mathjax/` (jupyter-book 2 / mystmd downloads its theme while building and fails offline).
The pages are executed by `execute_pages` in one IPython shell (a fresh namespace per page) rather than one
Jupyter kernel per page, which keeps a cold build within minutes.

Incremental: a rebuild does only what its inputs ask for (`--fresh` ignores every cache).

* The analyses are skipped when `results/manifest.json` still describes the project: the sha256 of every
  input file it lists is unchanged, every output it lists is there unaltered, and the package's code is the
  code that wrote it (`book/_build/.cache/analyses.json`); the simulation study likewise.
* An executed page is kept in `book/_build/.cache/pages/`, keyed by its source text, the package's code and
  library versions, the file names under results/ and the sha256 of every project file the page opened
  while it ran (an audit hook records them); a hit restores the executed notebook and the figures and
  tables the page wrote, so a page runs again exactly when something it read changed.
* Sphinx keeps its environment and output in `book/_build/.sphinx/` and re-reads only the sources whose
  bytes changed; when no source changed, Sphinx is not started at all.

Sphinx is run quietly: only its warnings and errors are shown, and the summary says how many warnings the
HTML carries. The HTML is copied into place only when the build succeeded, so `book/_build/html` is whole or
absent. `serve_book` serves it on localhost (`metaexercise book --serve`); the book's own search works from
disk too (`write_search_index`: a JS index of every page's text, loaded with a <script> element).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

from metaexercise._version import __version__
from metaexercise.errors import BookBuildError
from metaexercise.publish.declared import load_analyses, load_declaration
from metaexercise.publish.generate import citation_markdown, copy_assets, write_book_sources
from metaexercise.review.project import Project

#: Caches and Sphinx's working folders, under book/_build/.
CACHE = ".cache"
SPHINX_WORK = ".sphinx"
#: Libraries whose versions change what a page shows or how Sphinx renders it.
_LIBRARIES = ("numpy", "scipy", "pandas", "matplotlib", "nbformat", "myst-nb", "myst-parser", "sphinx",
              "jupyter-book", "sphinx-book-theme", "pydata-sphinx-theme", "ipython", "pyyaml")
_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class BookBuild:
    """Where the HTML went, how long each step took (seconds), what was reused and how many Sphinx
    warnings the HTML carries."""

    html: Path
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: int = 0
    reused: tuple[str, ...] = ()

    def summary(self) -> str:
        steps = ", ".join(f"{name} {sec:.1f} s" for name, sec in self.seconds.items())
        warned = (f" with {self.warnings} Sphinx warning{'s' if self.warnings != 1 else ''} (listed above)"
                  if self.warnings else "")
        reused = f"; reused: {', '.join(self.reused)}" if self.reused else ""
        return (f"book built in {sum(self.seconds.values()):.1f} s{warned} ({steps}{reused}): "
                f"{self.html / 'index.html'}")


# ------------------------------------------------------------------------------------------ fingerprints
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=4)
def code_fingerprint(*, without: tuple[str, ...] = ()) -> str:
    """sha256 over every file of the installed package (but the subpackages in `without`), its version, the
    Python version and the versions of the libraries in `_LIBRARIES`: what a cached result was made with."""
    h = hashlib.sha256(f"{__version__}|{sys.version}".encode())
    for name in _LIBRARIES:
        h.update(f"|{name}={_version(name)}".encode())
    for path in sorted(_PACKAGE.rglob("*")):
        rel = path.relative_to(_PACKAGE)
        if not path.is_file() or "__pycache__" in rel.parts or path.suffix == ".pyc" or rel.parts[0] in without:
            continue
        h.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _listing(folder: Path) -> str:
    """sha256 of the names of the files under `folder` (a page that only checks whether a file exists)."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        if folder.is_dir() else []
    return _sha256("\n".join(names).encode())


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ the analyses
def _run_analyses(project: Project, source: str, search_counter=None) -> None:
    try:
        from metaexercise.review.run import run_project
    except ImportError as exc:  # the analyses runner is a separate module of the package
        raise BookBuildError(f"cannot run the analyses: {exc}") from exc
    run_project(project, source=source, search_counter=search_counter)


#: The simulation study shown on the methods page: the review preset (k = 32, I² ≈ 73 %, median n 121),
#: replicates and seed fixed so that every build shows the same table (`metaexercise.engine.simulate`).
SIMULATION_REPS = 2000
SIMULATION_SEED = 20211216


def _run_simulation(project: Project) -> None:
    """results/simulation.csv: the review preset through `run_simulation`, in this process (deterministic;
    `metaexercise.review.exhibits.write_simulation`)."""
    from metaexercise.review.exhibits import write_simulation

    write_simulation(project, SIMULATION_REPS, SIMULATION_SEED)


def _analyses_code() -> str:
    # The analyses never import the publish floor (tests/test_layers.py), so editing a page helper does
    # not make the analyses run again.
    return code_fingerprint(without=("publish",))


def input_files(project: Project, source: str, search_counter=None) -> dict[str, str]:
    """sha256 of the files `metaexercise run` lists as the inputs of `source` in results/manifest.json
    (`metaexercise.review.run._inputs` over `exhibits.input_folders`), keyed by path relative to the project,
    found without importing the runner (a rebuild with nothing changed stays quick): review.yaml and every
    file under analyses/ and the sheets' folder; for the extraction also searches/ (when the search update is
    counted) and the metafor fixtures (when there are any)."""
    synthetic = source in ("replica", "synthetic")
    folders = [project.analyses, project.root / "replica" / "extraction" if synthetic else project.extraction]
    if not synthetic:
        if search_counter is not None and project.searches.is_dir():
            folders.append(project.searches)
        if (project.reference / "rma.json").is_file():
            folders.append(project.reference)
    files = [project.declaration] if project.declaration.is_file() else []
    files += sorted(p for base in folders if base.is_dir() for p in base.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(project.root).as_posix(): _sha256(p.read_bytes()) for p in files}


def analyses_state(project: Project, source: str, search_counter=None) -> dict | None:
    """What the results of `source` were made from, when `results/manifest.json` still describes the
    project: the manifest's sha256 and the package's code. None when the results must be computed again (no
    manifest, an input added, removed or changed, an output missing or altered)."""
    synthetic = source in ("replica", "synthetic")
    folder = project.results / "replica" if synthetic else project.results
    raw = (folder / "manifest.json").read_bytes() if (folder / "manifest.json").is_file() else b""
    manifest = _read_json(folder / "manifest.json")
    if not manifest or manifest.get("toolkit", {}).get("version") != __version__:
        return None
    if synthetic and not (project.root / "replica" / "extraction").is_dir():
        return None
    if input_files(project, source, search_counter) != manifest.get("inputs"):
        return None
    outputs = manifest.get("outputs", {})
    if not outputs or any(_file_sha(folder / name) != sha for name, sha in outputs.items()):
        return None
    return {"manifest": _sha256(raw), "code": _analyses_code()}


class _Record:
    """book/_build/.cache/analyses.json: per step, the state its outputs were made from."""

    def __init__(self, project: Project):
        self.path = project.book / "_build" / CACHE / "analyses.json"
        self.content = _read_json(self.path)

    def current(self, step: str, state: dict | None) -> bool:
        return state is not None and self.content.get(step) == state

    def save(self, step: str, state: dict | None) -> None:
        if state is None:
            self.content.pop(step, None)
        else:
            self.content[step] = state
        _write_json(self.path, self.content)


def _simulation_state(project: Project) -> dict | None:
    sha = _file_sha(project.results / "simulation.csv")
    if sha is None:
        return None
    return {"csv": sha, "code": _analyses_code(), "reps": SIMULATION_REPS, "seed": SIMULATION_SEED}


# ------------------------------------------------------------------------------------------ the pages
def _sphinx_main(book: str, output: str, jobs: str) -> int:
    """Entry point of the build subprocess: Jupyter Book's own Sphinx call (as jupyter_book.cli.main.build
    makes it), on pages already executed by `execute_pages`; quiet (warnings and errors only), no colours."""
    from jupyter_book.config import get_final_config
    from jupyter_book.sphinx import build_sphinx
    from sphinx.util.console import nocolor

    nocolor()
    src = Path(book)
    overrides = {"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False,
                 "nb_execution_mode": "off"}
    config, _ = get_final_config(user_yaml=src / "_config.yml", cli_config=dict(overrides), sourcedir=src)
    # sphinx-thebe (live code, loads thebe from a CDN) declares `const THEBE_JS_URL` twice under Sphinx 7.4,
    # a console error on every page; the book has no live code, so it goes.
    overrides["extensions"] = [e for e in config["extensions"] if e != "sphinx_thebe"]
    result = build_sphinx(src, Path(output), use_external_toc=True, noconfig=True,
                          path_config=str(src / "_config.yml"), confoverrides=overrides,
                          builder="html", keep_going=True, jobs=int(jobs), quiet=True)
    return 0 if result == 0 else 1


def _is_notebook(text: str) -> bool:
    head = text.split("\n---", 1)[0] if text.startswith("---") else ""
    return "kernelspec:" in head


def _outputs(shell, result, stdout: str, captured) -> list:
    import nbformat

    outs = []
    if stdout.strip():
        outs.append(nbformat.v4.new_output("stream", name="stdout", text=stdout))
    for rich in captured:
        outs.append(nbformat.v4.new_output("display_data", data=rich.data, metadata=rich.metadata or {}))
    if result is not None:
        data, metadata_ = shell.display_formatter.format(result)
        outs.append(nbformat.v4.new_output("execute_result", data=data, metadata=metadata_, execution_count=1))
    return outs


#: The files a page opens while it runs (absolute paths), or None when no page is running.
_OPENED: set[str] | None = None
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    if event != "open" or _OPENED is None:
        return
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return  # a file descriptor
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else \
        bool(isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
    if not writing:
        _OPENED.add(os.path.abspath(os.fsdecode(path)))


def _hook() -> None:
    global _HOOKED
    if not _HOOKED:  # an audit hook cannot be removed: one for the process, idle unless a page runs
        sys.addaudithook(_audit)
        _HOOKED = True


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


class PageCache:
    """Executed pages in `folder` (one sub-folder per page: meta.json, page.ipynb, files/), with the key
    they were made under. See the module docstring for what the key holds."""

    def __init__(self, folder: Path, project: Project):
        self.folder = folder
        self.root = project.root.resolve()
        self.generated = (project.book / "generated").resolve()
        self.build = (project.book / "_build").resolve()
        self.base = {"code": code_fingerprint(), "results": _listing(project.results)}

    def _relevant(self, path: str) -> str | None:
        """`path` relative to the project when a page's output can depend on it, else None."""
        p = Path(os.path.realpath(path))
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return None
        skip = (self.generated, self.build, _PACKAGE)
        if any(p == s or s in p.parents for s in skip) or {"__pycache__", ".git"} & set(rel.parts):
            return None
        return rel.as_posix()

    def reads(self, opened: set[str]) -> dict[str, str | None]:
        out = {}
        for path in sorted(opened):
            rel = self._relevant(path)
            if rel is not None and not (self.root / rel).is_dir():
                out[rel] = _file_sha(self.root / rel)
        return out

    def lookup(self, name: str, text: str) -> Path | None:
        entry = self.folder / name
        meta = _read_json(entry / "meta.json")
        if not meta or meta.get("source") != _sha256(text.encode()) or any(meta.get(k) != v
                                                                           for k, v in self.base.items()):
            return None
        if any(_file_sha(self.root / rel) != sha for rel, sha in meta.get("reads", {}).items()):
            return None
        if not (entry / "page.ipynb").is_file() or not all((entry / "files" / f).is_file()
                                                              for f in meta.get("written", [])):
            return None
        return entry

    def restore(self, entry: Path, notebook: Path) -> None:
        shutil.copyfile(entry / "page.ipynb", notebook)
        for rel in _read_json(entry / "meta.json").get("written", []):
            target = self.generated / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / "files" / rel, target)

    def store(self, name: str, text: str, notebook: Path, reads: dict, written: list[str]) -> None:
        entry = self.folder / name
        shutil.rmtree(entry, ignore_errors=True)
        (entry / "files").mkdir(parents=True)
        shutil.copyfile(notebook, entry / "page.ipynb")
        for rel in written:
            (entry / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.generated / rel, entry / "files" / rel)
        _write_json(entry / "meta.json", {"source": _sha256(text.encode()), **self.base, "reads": reads,
                                          "written": written})  # last: an entry with meta.json is whole


@dataclass(frozen=True, slots=True)
class ExecutedPages:
    executed: tuple[str, ...]
    cached: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.executed) + len(self.cached)


def run_pages(src: Path, project: Project, echo: Callable[[str], None],
              cache: Path | None = None) -> ExecutedPages:
    """`execute_pages`, saying which pages ran and which came from `cache` (a folder; None: no cache)."""
    global _OPENED
    pages = sorted(p for p in src.glob("*.md") if _is_notebook(p.read_text(encoding="utf-8")))
    store = PageCache(cache, project) if cache is not None else None
    generated = project.book / "generated"
    executed, cached = [], []
    shell = None
    main_module = sys.modules.get("__main__")  # IPython swaps in a module without __spec__; put it back after
    old_cwd, env_name, old_env = Path.cwd(), "", None
    try:
        for page in pages:
            text = page.read_text(encoding="utf-8")
            entry = store.lookup(page.stem, text) if store is not None else None
            if entry is not None:
                store.restore(entry, page.with_suffix(".ipynb"))
                page.unlink()
                cached.append(page.name)
                continue
            if shell is None:  # the first page to run (the page helpers import matplotlib: only now)
                from metaexercise.publish.pages import PROJECT_ENV

                env_name, old_env = PROJECT_ENV, os.environ.get(PROJECT_ENV)
                os.environ[PROJECT_ENV] = str(project.root)
                shell = _shell()
                _hook()
                os.chdir(project.book)
            t0 = time.perf_counter()
            before = _snapshot(generated)
            _OPENED = set()
            try:
                nb = _execute(shell, page, text)
            finally:
                opened, _OPENED = _OPENED, None
            nb_path = page.with_suffix(".ipynb")
            _write_notebook(nb, nb_path)
            page.unlink()
            executed.append(page.name)
            if store is not None:
                after = _snapshot(generated)
                written = sorted(k for k, v in after.items() if before.get(k) != v)
                store.store(page.stem, text, nb_path, store.reads(opened), written)
            echo(f"    page {len(executed)} {page.name}: {time.perf_counter() - t0:.1f} s")
    finally:
        _OPENED = None
        if main_module is not None:
            sys.modules["__main__"] = main_module  # multiprocessing's spawn (e.g. Dask workers) needs it
        os.chdir(old_cwd)
        if env_name and old_env is None:
            os.environ.pop(env_name, None)
        elif env_name:
            os.environ[env_name] = old_env
    return ExecutedPages(tuple(executed), tuple(cached))


def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    # The last expression's value is kept as the cell's rich result (ExecutionResult.result); the terminal
    # display hook must not also print its text form into the page.
    shell.displayhook.write_output_prompt = lambda: None
    shell.displayhook.write_format_data = lambda *args, **kwargs: None
    return shell


def _execute(shell, page: Path, text: str):
    from IPython.utils.capture import capture_output
    from myst_nb.core.read import read_myst_markdown_notebook

    nb = read_myst_markdown_notebook(text)
    shell.reset(new_session=False)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: the same outputs give the same notebook, byte for byte
        if cell.cell_type != "code":
            continue
        with capture_output() as cap:
            result = shell.run_cell(cell.source, store_history=False)
        if not result.success:
            err = result.error_in_exec or result.error_before_exec
            raise BookBuildError(f"book page {page.name} failed: {type(err).__name__}: {err}\n"
                                 f"in the cell:\n{cell.source}")
        cell.outputs = _outputs(shell, result.result, cap.stdout, cap.outputs)
    return nb


def _write_notebook(nb, path: Path) -> None:
    import nbformat

    nbformat.write(nb, path)


def execute_pages(src: Path, project: Project, echo: Callable[[str], None], cache: Path | None = None) -> int:
    """Execute every MyST-notebook page in `src` (a copy of book/) in one IPython shell, each page in a fresh
    namespace, and replace it by the executed .ipynb. One process for all pages instead of one Jupyter
    kernel per page: the same outputs, a fraction of the time. With a `cache` folder, a page whose inputs
    are unchanged is restored from it instead (`PageCache`). Returns the number of pages; raises
    BookBuildError naming a page that failed."""
    return len(run_pages(src, project, echo, cache))


# ------------------------------------------------------------------------------------------ Sphinx
def _sync_tree(src: Path, dst: Path) -> list[str]:
    """Make `dst` a copy of `src`, rewriting only the files whose bytes differ (Sphinx decides what to read
    again by modification time). Returns the paths that changed, relative to `dst`."""
    want = {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()}
    changed = []
    if dst.is_dir():
        for p in sorted(dst.rglob("*"), key=lambda q: len(q.parts), reverse=True):
            rel = p.relative_to(dst).as_posix()
            if p.is_file() and rel not in want:
                p.unlink()
                changed.append(rel)
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    for rel, p in sorted(want.items()):
        q = dst / rel
        if q.is_file() and q.stat().st_size == p.stat().st_size and q.read_bytes() == p.read_bytes():
            continue
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, q)
        changed.append(rel)
    return changed


def _structure(src: Path) -> str:
    """sha256 of what every page's navigation shows: the toc, the config, the set of pages and their titles.
    When it changes, Sphinx builds from scratch (an incremental build would leave stale sidebars)."""
    h = hashlib.sha256()
    for name in ("_toc.yml", "_config.yml"):
        h.update((src / name).read_bytes() if (src / name).is_file() else b"")
    for p in sorted(src.glob("*")):
        if p.suffix not in (".md", ".ipynb"):
            continue
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".ipynb":
            cells = json.loads(text).get("cells", [])
            text = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                             for c in cells if c.get("cell_type") == "markdown")
        title = next((ln for ln in text.splitlines() if ln.startswith("# ")), "")
        h.update(f"{p.name}\0{title}\n".encode())
    return h.hexdigest()


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


_WARNING = re.compile(r"\b(WARNING|ERROR|CRITICAL|SEVERE)\b")


def _doc_of(line: str) -> str:
    """The source file a Sphinx warning line names ("book/NAME.ipynb: ..." -> "NAME.ipynb"), or ""."""
    return line[len("book/"):].split(":", 1)[0] if line.startswith("book/") else ""


def _sphinx(project: Project, echo: Callable[[str], None], fresh: bool = False) -> tuple[Path, int, list[str]]:
    """Write the sources, execute (or restore) the pages, run Sphinx when a source changed, and put the HTML
    in place. Returns the HTML folder, the number of warnings it carries and what was reused."""
    book = project.book
    if (project.root / "review.yaml").is_file():
        plan = write_book_sources(project)
        echo(f"    pages: {len(plan.pages)} generated, {len(plan.own)} the project's own ({', '.join(plan.own)})"
             if plan.own else f"    pages: {len(plan.pages)} generated")
    if not (book / "_config.yml").is_file():
        raise BookBuildError(f"{book / '_config.yml'} not found: is {project.root} a metaexercise project?")
    build = book / "_build"
    cache, work = build / CACHE, build / SPHINX_WORK
    if fresh:  # (the analyses' record in the same folder is build_book's)
        shutil.rmtree(cache / "pages", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    generated = book / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    (generated / "figures").mkdir(parents=True)
    (generated / "tables").mkdir(parents=True)
    staging = build / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    src = staging / "book"
    shutil.copytree(book, src, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__"))
    copy_assets(src)
    for name in ("CHANGELOG.md", "CITATION.cff", "LICENSE"):  # pages include them as ../NAME
        if (project.root / name).is_file():
            shutil.copy2(project.root / name, staging / name)
    (src / "_citation.md").write_text(citation_markdown(project.root / "CITATION.cff"), encoding="utf-8")
    reused: list[str] = []
    pages = run_pages(src, project, echo, cache / "pages")
    echo(f"    pages: {len(pages.executed)} executed, {len(pages.cached)} unchanged (from the cache)")
    if pages.cached and not pages.executed:
        reused.append("every executed page")
    shutil.copytree(generated, src / "generated")

    sphinx_src, sphinx_out = work / "src", work / "html"
    changed = _sync_tree(staging, sphinx_src)
    state_path = work / "state.json"
    previous = _read_json(state_path)
    state = {"sources": _tree_digest(sphinx_src), "structure": _structure(sphinx_src / "book"),
             "code": code_fingerprint()}
    target = build / "html"
    warnings: dict[str, list[str]] = previous.get("warnings", {}) if previous.get("ok") else {}
    if (previous.get("ok") and all(previous.get(k) == v for k, v in state.items())
            and (target / "index.html").is_file() and (sphinx_out / "index.html").is_file()):
        echo("    HTML: no source changed since the last build, Sphinx not run")
        reused.append("the HTML")
        for lines in warnings.values():
            for line in lines:
                echo(f"    (from an earlier build) {line}")
        shutil.rmtree(staging, ignore_errors=True)
        return target, sum(len(v) for v in warnings.values()), reused
    full = not previous.get("ok") or previous.get("structure") != state["structure"] or \
        previous.get("code") != state["code"]
    if full:
        shutil.rmtree(sphinx_out, ignore_errors=True)
        shutil.rmtree(work / ".doctrees", ignore_errors=True)
        warnings = {}
        echo(f"    Sphinx: building all pages{' (from scratch)' if previous else ''} ...")
    else:
        for rel in changed:  # the pages read again report their warnings afresh
            warnings.pop(Path(rel).relative_to("book").as_posix() if rel.startswith("book/") else rel, None)
        warnings.pop("", None)
        echo(f"    Sphinx: {len(changed)} changed source file(s), reading only those again ...")
    _write_json(state_path, {**state, "ok": False})
    from metaexercise.publish.pages import PROJECT_ENV

    env = {**os.environ, PROJECT_ENV: str(project.root), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "metaexercise.publish.book", str(sphinx_src / "book"), str(sphinx_out), "1"]
    log: list[str] = []
    with subprocess.Popen(cmd, cwd=sphinx_src / "book", env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:  # quiet: only warnings and errors reach here
            line = line.rstrip().replace(str(sphinx_src / "book") + os.sep, "book/")  # the page, not the copy
            if not line.strip():
                continue
            log.append(line)
            echo(f"    {line}")
    if proc.returncode != 0 or not (sphinx_out / "index.html").is_file():
        raise BookBuildError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    failed = [ln for ln in log if "Executing notebook failed" in ln or "CellExecutionError" in ln]
    if failed:
        raise BookBuildError("a book page failed to execute:\n" + "\n".join(failed))
    for line in log:
        if _WARNING.search(line):
            warnings.setdefault(_doc_of(line), []).append(line)
    write_search_index(sphinx_out)
    fresh_copy, old = build / ".new-html", build / ".old-html"
    for folder in (fresh_copy, old):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(sphinx_out, fresh_copy)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh_copy, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    _write_json(state_path, {**state, "ok": True, "warnings": warnings})
    return target, sum(len(v) for v in warnings.values()), reused


def build_book(project: Project, *, run_analyses: bool = True,
               echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
               search_counter: Callable | None = None, fresh: bool = False) -> BookBuild:
    """Run every step, echoing progress, and return where the HTML is and how long each step took.
    `search_counter` counts the search update's PRISMA flow for the studies page
    (`metaexercise.review.exhibits.SearchCounter`; the command line passes the searches wing's). A step
    whose inputs are unchanged since it last ran is skipped (see the module docstring); `fresh` runs all."""
    steps: list[tuple[str, Callable[[], object]]] = []
    declared = (project.root / "review.yaml").is_file()
    components = load_declaration(project).components if declared else {"replica": True, "simulation": True}
    record = _Record(project)
    if fresh:
        record.content = {}
    reused: list[str] = []

    def analyses(source: str, counter) -> Callable[[], None]:
        def step() -> None:
            if record.current(source, analyses_state(project, source, counter)):
                echo(f"    results{'/replica' if source == 'replica' else ''}/ are up to date with their "
                     "inputs (results/manifest.json): not run again")
                reused.append(f"analyses ({source})")
                return
            record.save(source, None)
            _run_analyses(project, source, counter)
            record.save(source, analyses_state(project, source, counter))
        return step

    def simulation() -> None:
        if record.current("simulation", _simulation_state(project)):
            echo("    results/simulation.csv is up to date: not run again")
            reused.append("simulation")
            return
        record.save("simulation", None)
        _run_simulation(project)
        record.save("simulation", _simulation_state(project))

    if run_analyses and (not declared or load_analyses(project)):
        steps.append(("analyses (real extraction)", analyses("real", search_counter)))
        if components.get("replica"):
            steps.append(("analyses (synthetic replica)", analyses("replica", None)))
        if components.get("simulation"):
            steps.append((f"simulation study (review preset, {SIMULATION_REPS} replicates)", simulation))
    outcome: dict = {}

    def html() -> None:
        outcome["html"], outcome["warnings"], more = _sphinx(project, echo, fresh=fresh)
        reused.extend(more)

    steps.append(("HTML book (Jupyter Book, executing the pages)", html))
    seconds: dict[str, float] = {}
    for i, (name, step) in enumerate(steps, start=1):
        echo(f"[{i}/{len(steps)}] {name} ...")
        t0 = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - t0
        echo(f"[{i}/{len(steps)}] {name}: done in {seconds[name]:.1f} s")
    return BookBuild(project.book / "_build" / "html", seconds, outcome.get("warnings", 0), tuple(reused))


# ------------------------------------------------------------------------------------------ search
#: Pages the search index leaves out (Sphinx's own index pages).
_NOT_INDEXED = {"search.html", "genindex.html", "py-modindex.html"}
SEARCH_INDEX = "_static/metaexercise-search-index.js"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP_TAGS = {"script", "style", "svg", "noscript", "button", "template"}
_SKIP_CLASSES = {"headerlink", "me-downloads", "toggle-button"}


def _tex_words(tex: str) -> str:
    """Inline TeX as searchable words: "\\(\\delta = 0.2\\)" -> "delta = 0.2"."""
    tex = re.sub(r"\\[()\[\]]", " ", tex)
    tex = re.sub(r"\\(mathrm|text|mathbf|mathit|operatorname|left|right|big|Big|quad|qquad)\b", " ", tex)
    tex = re.sub(r"\\([A-Za-z]+)", r" \1 ", tex)
    return " ".join(re.sub(r"[\\{}^_$&~]|\\[,;:! ]", " ", tex).split())


class _PageText(HTMLParser):
    """The text of a built page's article, by section (`<section id=...>`): [(id, heading, text)]."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[list] = []  # [id, heading, [text parts]]
        self._stack: list[tuple[str, str]] = []  # (tag, role): role in {"article", "section", "skip", "h", ""}
        self._in_article = 0
        self._skip = 0
        self._heading: list | None = None
        self._open: list[list] = []
        self._in_title = False
        self._math = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        if tag in _VOID:
            return
        classes = set((a.get("class") or "").split())
        role = ""
        if tag == "article" and "bd-article" in classes:
            role, self._in_article = "article", self._in_article + 1
        elif self._in_article and (tag in _SKIP_TAGS or classes & _SKIP_CLASSES
                                   or ("math" in classes and tag != "span")):  # display equations
            role, self._skip = "skip", self._skip + 1
        elif self._in_article and "math" in classes:
            role, self._math = "math", self._math + 1
        elif self._in_article and tag == "section" and a.get("id"):
            role = "section"
            sec = [a["id"], "", []]
            self.sections.append(sec)
            self._open.append(sec)
        elif self._in_article and re.fullmatch(r"h[1-6]", tag) and self._open and not self._open[-1][1]:
            role, self._heading = "h", []
        self._stack.append((tag, role))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in _VOID:
            return
        while self._stack:
            open_tag, role = self._stack.pop()
            if role == "article":
                self._in_article -= 1
            elif role == "skip":
                self._skip -= 1
            elif role == "math":
                self._math -= 1
            elif role == "section" and self._open:
                self._open.pop()
            elif role == "h" and self._heading is not None and self._open:
                self._open[-1][1] = " ".join("".join(self._heading).split())
                self._heading = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if not self._in_article or self._skip:
            return
        if self._math:
            data = f" {_tex_words(data)} "
        if self._heading is not None:
            self._heading.append(data)
            return
        if self._open:
            self._open[-1][2].append(data)
        else:
            if not self.sections or self.sections[0][0] != "":
                self.sections.insert(0, ["", "", []])
            self.sections[0][2].append(data)


def write_search_index(html: Path, limit: int = 60_000) -> Path:
    """`_static/metaexercise-search-index.js`: every page's text by section (headings, prose, tables and
    figure captions; not the navigation), as `window.METAEXERCISE_SEARCH = [...]`. The book's search page
    (`_static/metaexercise.js`) loads it with a <script> element, which browsers allow from disk (file://),
    where Sphinx's own search cannot fetch the pages it shows. `limit`: characters kept per section."""
    entries = []
    for page in sorted(html.glob("*.html")):
        if page.name in _NOT_INDEXED:
            continue
        parser = _PageText()
        parser.feed(page.read_text(encoding="utf-8"))
        page_title = re.sub(r"\s+[—–-]+\s+[^—–-]*$", "", " ".join(parser.title.split())).strip()
        for sid, heading, parts in parser.sections:
            text = " ".join(" ".join(parts).split())
            if not text and not heading:
                continue
            entries.append({"page": page.name, "anchor": f"#{sid}" if sid else "", "title": heading or page_title,
                            "page_title": page_title, "text": text[:limit]})
    target = html / SEARCH_INDEX
    target.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(entries, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    target.write_text(f"window.METAEXERCISE_SEARCH = {body};\n", encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------------ serving
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_book(html: Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for the built book at `html` on `host:port` (port 0: any free one), serving in a
    background thread; call `.shutdown()` to stop it. Only localhost by default."""
    if not (html / "index.html").is_file():
        raise BookBuildError(f"{html / 'index.html'} not found: build the book first (`metaexercise book`)")
    handler = functools.partial(_QuietHandler, directory=str(html))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise BookBuildError(f"cannot serve the book on {host}:{port}: {exc}; try another --port") from exc
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    raise SystemExit(_sphinx_main(*sys.argv[1:4]))
