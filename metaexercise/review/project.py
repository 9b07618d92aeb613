"""Where a project's folders are. Always relative to the project root (the current directory or
`--project`), never to the installed package, so a clone works on its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Project:
    root: Path

    @property
    def extraction(self) -> Path:
        return self.root / "extraction"

    @property
    def analyses(self) -> Path:
        return self.root / "analyses"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def searches(self) -> Path:
        return self.root / "searches"

    @property
    def book(self) -> Path:
        return self.root / "book"


def project_from_args(args) -> Project:
    return Project(Path(getattr(args, "project", ".") or ".").resolve())
