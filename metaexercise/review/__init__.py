"""The review floor: a project's folders, analysis specs, runs that write `results/`, GRADE, the published
registry and its audit, and the labelled synthetic replica. It builds on the extraction and engine floors. The
review's words (contrasts, analysis kinds and statuses, GRADE domains and certainty levels) are defined once, in
`metaexercise.review.vocabulary`."""
