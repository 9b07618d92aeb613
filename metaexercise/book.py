"""`metaexercise book`: run the analyses (real extraction and synthetic replica), audit the published
numbers, then build the HTML book with Jupyter Book 1.x (Sphinx) into `book/_build/html`.

Offline by design: Jupyter Book 1 builds with Sphinx and executed MyST notebooks, and MathJax is served from
`book/_static/mathjax/` (jupyter-book 2 / mystmd downloads its theme while building and fails offline).
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

from metaexercise.bookpages import PROJECT_ENV
from metaexercise.errors import BookBuildError
from metaexercise.project import Project


@dataclass(frozen=True, slots=True)
class BookBuild:
    """Where the HTML went and how long each step took (seconds)."""

    html: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        steps = ", ".join(f"{name} {sec:.1f} s" for name, sec in self.seconds.items())
        return f"book built in {sum(self.seconds.values()):.1f} s ({steps}): {self.html / 'index.html'}"


def _run_analyses(project: Project, source: str) -> None:
    try:
        from metaexercise.run import run_project
    except ImportError as exc:  # the analyses runner is a separate module of the package
        raise BookBuildError(f"cannot run the analyses: {exc}") from exc
    run_project(project, source=source)


def _audit(project: Project) -> None:
    from metaexercise.audit import run_audit

    run_audit(project)


def _jupyter_book_command() -> list[str]:
    exe = shutil.which("jupyter-book")
    return [exe] if exe else [sys.executable, "-m", "jupyter_book.cli.main"]


def _sphinx(project: Project, echo: Callable[[str], None]) -> Path:
    book = project.book
    if not (book / "_config.yml").is_file():
        raise BookBuildError(f"{book / '_config.yml'} not found: is {project.root} a metaexercise project?")
    generated = book / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    (generated / "figures").mkdir(parents=True)
    (generated / "tables").mkdir(parents=True)
    staging = book / "_build" / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    env = {**os.environ, PROJECT_ENV: str(project.root), "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    cmd = [*_jupyter_book_command(), "build", str(book), "--path-output", str(staging), "--keep-going"]
    log: list[str] = []
    with subprocess.Popen(cmd, cwd=book, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for line in proc.stdout:  # Sphinx's own progress ("reading sources... [ 40%] ..."), live
            log.append(line.rstrip())
            echo(f"    {line.rstrip()}")
    built = staging / "_build" / "html"
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
               echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> BookBuild:
    """Run every step, echoing progress, and return where the HTML is and how long each step took."""
    steps: list[tuple[str, Callable[[], object]]] = []
    if run_analyses:
        steps += [
            ("analyses (real extraction)", lambda: _run_analyses(project, "real")),
            ("analyses (synthetic replica)", lambda: _run_analyses(project, "replica")),
            ("audit of the published numbers", lambda: _audit(project)),
        ]
    steps.append(("HTML book (Jupyter Book, executing every page)", lambda: _sphinx(project, echo)))
    seconds: dict[str, float] = {}
    for i, (name, step) in enumerate(steps, start=1):
        echo(f"[{i}/{len(steps)}] {name} ...")
        t0 = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - t0
        echo(f"[{i}/{len(steps)}] {name}: done in {seconds[name]:.1f} s")
    return BookBuild(project.book / "_build" / "html", seconds)
