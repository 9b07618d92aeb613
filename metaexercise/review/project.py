"""Where a project's folders are. Always relative to the project root (the current directory or
`--project`), never to the installed package, so a clone works on its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Where a project keeps R metafor's reference fixtures (rma.json, metareg.json, bias.json), relative to its root.
REFERENCE_FOLDER = "tests/reference"


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    #: The reference fixtures' folder relative to `root` (`reference`); "tests/reference" unless told.
    reference_folder: str = REFERENCE_FOLDER

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

    @property
    def reference(self) -> Path:
        """metafor's reference fixtures, against which `metaexercise run` checks the engine
        (`metaexercise.engine.validation`; results/validation.csv)."""
        return self.root / self.reference_folder


def project_from_args(args) -> Project:
    return Project(Path(getattr(args, "project", ".") or ".").resolve())
