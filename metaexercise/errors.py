"""Exceptions raised by metaexercise. Each message says what is wrong, where, and what to do."""


class MetaexerciseError(Exception):
    """Base class of every error metaexercise raises on purpose."""


class ConvergenceError(MetaexerciseError):
    """An iterative estimator (e.g. REML Fisher scoring) did not converge."""


class ExtractionError(MetaexerciseError):
    """An extraction sheet is malformed; the message names file, sheet, row and column."""


class SpecError(MetaexerciseError):
    """An analysis spec (analyses/*.yaml) is malformed."""


class SourceError(MetaexerciseError, ValueError):
    """A run was asked for a source the project does not have, or its sheets are of the other source (the
    synthetic replica's sheets run as the real extraction, or the other way round)."""


class SearchImportError(MetaexerciseError):
    """A search export (RIS, nbib, CSV) could not be imported; the message names file and line."""


class SearchDataError(MetaexerciseError):
    """A file under searches/ (overrides, previous edition, screening log) is malformed; the message names
    file, sheet, row and column."""


class BookBuildError(MetaexerciseError):
    """The book could not be built; the message names the step and what to do."""
