"""The publishing floor: the Jupyter Book, built from `results/` (and the project's declared files) alone.
Its page helpers fit nothing and read no extraction sheet: whatever a page shows, `metaexercise run` wrote."""
