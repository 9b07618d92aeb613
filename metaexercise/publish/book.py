"""`metaexercise book`: run the analyses (the extraction, and the synthetic replica where review.yaml declares one;
`metaexercise.review.run`, which also audits the published numbers where a registry is declared), write the
book's pages and `_toc.yml` from the project (`metaexercise.publish.generate`), then build the HTML book with
Jupyter Book 1.x (Sphinx) into `book/_build/html`. A project with no analyses yet gets a book that says so.

Offline by design: Jupyter Book 1 builds with Sphinx from MyST notebooks, and MathJax is served from
`book/_static/mathjax/` (jupyter-book 2 / mystmd downloads its theme while building and fails offline).
The pages are executed by `execute_pages` in one IPython shell (a fresh namespace per page) rather than one
Jupyter kernel per page, which keeps a cold build within minutes.
The HTML is built into a temporary folder and moved into place only when the build succeeded, so
`book/_build/html` is whole or absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from metaexercise.errors import BookBuildError
from metaexercise.publish.declared import load_analyses, load_declaration
from metaexercise.publish.generate import copy_assets, write_book_sources
from metaexercise.publish.pages import PROJECT_ENV
from metaexercise.review.project import Project


@dataclass(frozen=True, slots=True)
class BookBuild:
    """Where the HTML went and how long each step took (seconds)."""

    html: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        steps = ", ".join(f"{name} {sec:.1f} s" for name, sec in self.seconds.items())
        return f"book built in {sum(self.seconds.values()):.1f} s ({steps}): {self.html / 'index.html'}"


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


def _sphinx_main(book: str, output: str, jobs: str) -> int:
    """Entry point of the build subprocess: Jupyter Book's own Sphinx call (as jupyter_book.cli.main.build
    makes it), on pages already executed by `execute_pages`."""
    from jupyter_book.config import get_final_config
    from jupyter_book.sphinx import build_sphinx

    src = Path(book)
    overrides = {"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False,
                 "nb_execution_mode": "off"}
    config, _ = get_final_config(user_yaml=src / "_config.yml", cli_config=dict(overrides), sourcedir=src)
    # sphinx-thebe (live code, loads thebe from a CDN) declares `const THEBE_JS_URL` twice under Sphinx 7.4,
    # a console error on every page; the book has no live code, so it goes.
    overrides["extensions"] = [e for e in config["extensions"] if e != "sphinx_thebe"]
    result = build_sphinx(src, Path(output), use_external_toc=True, noconfig=True,
                          path_config=str(src / "_config.yml"), confoverrides=overrides,
                          builder="html", keep_going=True, jobs=int(jobs))
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
        data, metadata = shell.display_formatter.format(result)
        outs.append(nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=1))
    return outs


def execute_pages(src: Path, project: Project, echo: Callable[[str], None]) -> int:
    """Execute every MyST-notebook page in `src` (a copy of book/) in one IPython shell, each page in a fresh
    namespace, and replace it by the executed .ipynb. One process for all pages instead of one Jupyter
    kernel per page: the same outputs, a fraction of the time. Raises BookBuildError naming the page."""
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from myst_nb.core.read import read_myst_markdown_notebook

    main_module = sys.modules.get("__main__")  # IPython swaps in a module without __spec__; put it back after
    shell = InteractiveShell.instance()
    # The last expression's value is kept as the cell's rich result (ExecutionResult.result); the terminal
    # display hook must not also print its text form into the page.
    shell.displayhook.write_output_prompt = lambda: None
    shell.displayhook.write_format_data = lambda *args, **kwargs: None
    pages = sorted(p for p in src.glob("*.md") if _is_notebook(p.read_text(encoding="utf-8")))
    old_cwd, old_env = Path.cwd(), os.environ.get(PROJECT_ENV)
    os.environ[PROJECT_ENV] = str(project.root)
    os.chdir(project.book)
    try:
        for i, page in enumerate(pages, start=1):
            t0 = time.perf_counter()
            nb = read_myst_markdown_notebook(page.read_text(encoding="utf-8"))
            shell.reset(new_session=False)
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                with capture_output() as cap:
                    result = shell.run_cell(cell.source, store_history=False)
                if not result.success:
                    err = result.error_in_exec or result.error_before_exec
                    raise BookBuildError(f"book page {page.name} failed: {type(err).__name__}: {err}\n"
                                         f"in the cell:\n{cell.source}")
                cell.outputs = _outputs(shell, result.result, cap.stdout, cap.outputs)
            nbformat.write(nb, page.with_suffix(".ipynb"))
            page.unlink()
            echo(f"    page {i}/{len(pages)} {page.name}: {time.perf_counter() - t0:.1f} s")
    finally:
        if main_module is not None:
            sys.modules["__main__"] = main_module  # multiprocessing's spawn (e.g. Dask workers) needs it
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop(PROJECT_ENV, None)
        else:
            os.environ[PROJECT_ENV] = old_env
    return len(pages)


def _sphinx(project: Project, echo: Callable[[str], None]) -> Path:
    book = project.book
    if (project.root / "review.yaml").is_file():
        plan = write_book_sources(project)
        echo(f"    pages: {len(plan.pages)} generated, {len(plan.own)} the project's own ({', '.join(plan.own)})"
             if plan.own else f"    pages: {len(plan.pages)} generated")
    if not (book / "_config.yml").is_file():
        raise BookBuildError(f"{book / '_config.yml'} not found: is {project.root} a metaexercise project?")
    generated = book / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    (generated / "figures").mkdir(parents=True)
    (generated / "tables").mkdir(parents=True)
    staging = book / "_build" / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    src = staging / "book"
    shutil.copytree(book, src, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__"))
    copy_assets(src)
    for name in ("CHANGELOG.md", "CITATION.cff", "LICENSE"):  # pages include them as ../NAME
        if (project.root / name).is_file():
            shutil.copy2(project.root / name, staging / name)
    echo("    executing the pages (one Python process) ...")
    execute_pages(src, project, echo)
    shutil.copytree(generated, src / "generated")
    env = {**os.environ, PROJECT_ENV: str(project.root), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    built = staging / "html"
    cmd = [sys.executable, "-m", "metaexercise.publish.book", str(src), str(built), "1"]
    log: list[str] = []
    with subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for line in proc.stdout:  # Sphinx's own progress ("reading sources... [ 40%] ..."), live
            line = line.rstrip()
            log.append(line)
            echo(f"    {line}")
    if proc.returncode != 0 or not (built / "index.html").is_file():
        raise BookBuildError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    failed = [ln for ln in log if "Executing notebook failed" in ln or "CellExecutionError" in ln]
    if failed:
        raise BookBuildError("a book page failed to execute:\n" + "\n".join(failed))
    target = book / "_build" / "html"
    old = book / "_build" / ".old-html"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def build_book(project: Project, *, run_analyses: bool = True,
               echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
               search_counter: Callable | None = None) -> BookBuild:
    """Run every step, echoing progress, and return where the HTML is and how long each step took.
    `search_counter` counts the search update's PRISMA flow for the studies page
    (`metaexercise.review.exhibits.SearchCounter`; the command line passes the searches wing's)."""
    steps: list[tuple[str, Callable[[], object]]] = []
    declared = (project.root / "review.yaml").is_file()
    components = load_declaration(project).components if declared else {"replica": True, "simulation": True}
    if run_analyses and (not declared or load_analyses(project)):
        steps.append(("analyses (real extraction)", lambda: _run_analyses(project, "real", search_counter)))
        if components.get("replica"):
            steps.append(("analyses (synthetic replica)", lambda: _run_analyses(project, "replica")))
        if components.get("simulation"):
            steps.append((f"simulation study (review preset, {SIMULATION_REPS} replicates)",
                          lambda: _run_simulation(project)))
    steps.append(("HTML book (Jupyter Book, executing every page)", lambda: _sphinx(project, echo)))
    seconds: dict[str, float] = {}
    for i, (name, step) in enumerate(steps, start=1):
        echo(f"[{i}/{len(steps)}] {name} ...")
        t0 = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - t0
        echo(f"[{i}/{len(steps)}] {name}: done in {seconds[name]:.1f} s")
    return BookBuild(project.book / "_build" / "html", seconds)


if __name__ == "__main__":
    raise SystemExit(_sphinx_main(*sys.argv[1:4]))
