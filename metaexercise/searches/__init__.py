"""Updating the review's literature search: import database exports (RIS, PubMed MEDLINE, CSV), de-duplicate
within and across searches and against the earlier edition, keep a two-reviewer screening log, count the
PRISMA 2020 flow of an updated review, and show what an update changed (edition diff, cumulative estimates).

One job per module: `records` (the records table), `ris`, `nbib`, `csvexport` (readers), `dedupe`,
`screening`, `prisma`, `edition`, and `store` (the layout of a project's `searches/` folder).
"""
