"""The extraction floor: the data-collection form and its sheets (one row per arm × outcome × time point, with
provenance), the instrument registry, normalisation to a common scale and the pairing of arms into comparisons.
It builds on `metaexercise.engine` (effect sizes, Cochrane Handbook conversions) and nothing above it."""
