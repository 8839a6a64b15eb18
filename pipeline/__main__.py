"""``python -m pipeline`` runs the same command line as ``assetpipe``."""

from pipeline.cli import run

run()
