"""The review UI: ``assetpipe review`` (a local page) and ``assetpipe watch`` (previews).

A user interface above :mod:`pipeline.api`, like the CLI: every pick, rejection, reroll
and build it offers is one ``api`` call, so the page and the commands cannot disagree.
Its web dependencies (Starlette, uvicorn) are imported only by :mod:`.server`, which the
CLI imports only when ``assetpipe review`` runs.
"""
