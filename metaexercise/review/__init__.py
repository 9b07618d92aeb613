"""The review floor: a project's folders, analysis specs, runs that write `results/`, GRADE, the published
registry and its audit, and the labelled synthetic replica. It builds on the extraction and engine floors."""
