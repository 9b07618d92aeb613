"""Where a project's folders are, and the review it declares. Always relative to the project root (the
current directory or `--project`), never to the installed package, so a clone works on its own."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from metaexercise.errors import SpecError
from metaexercise.review.declaration import FILE_NAME, Review, load_review

#: Where a project keeps R metafor's reference fixtures (rma.json, metareg.json, bias.json), relative to its root.
REFERENCE_FOLDER = "tests/reference"


@dataclass(frozen=True)
class Project:
    root: Path
    #: The reference fixtures' folder relative to `root` (`reference`); "tests/reference" unless told.
    reference_folder: str = REFERENCE_FOLDER

    @property
    def declaration(self) -> Path:
        """The project file, `review.yaml` at the root."""
        return self.root / FILE_NAME

    @cached_property
    def review(self) -> Review:
        """The review the project declares in `review.yaml` (read once; `SpecError` naming the file, line and
        key when it is missing or bad)."""
        if self.declaration.is_dir():
            raise SpecError(f"{self.declaration}: a folder, not the project file; move it away and write the "
                            "review's declaration there (`metaexercise init` writes one)")
        if not self.declaration.is_file():
            raise SpecError(f"{self.declaration}: no project file. Every project declares its review (outcomes, "
                            "comparators, follow-up windows, ...) in review.yaml at its root; `metaexercise init` "
                            "writes one (schema: metaexercise/review/declaration.py)")
        return load_review(self.declaration)

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
