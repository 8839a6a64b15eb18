"""``assetpipe init``: write a small working project, then say what to run next.

Its own module because it takes none of the project commands' flags: there is no
project to read yet, only a folder to write into.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from pipeline import api
from pipeline.cli.render import out, shown

NEXT_STEPS = (
    ("assetpipe plan", "what a build would make, and what it would cost"),
    ("assetpipe build --provider preview", "free offline placeholders in output/"),
)


@click.command()
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--project",
    "project",
    type=click.Path(path_type=Path),
    default=Path(),
    help="The project folder, when DIR is not given (default: the current one).",
)
def init(folder: Path | None, project: Path) -> None:
    """Write a small working project (settings, a spec, a template, a brand kit) into DIR;
    nothing is written when any of those files already exists."""
    result = api.init_project(folder if folder is not None else project)
    out.print(f"wrote a new assetpipe project in {shown(result.root)}:")
    for rel in result.written:
        out.print(f"  {shown(rel)}")
    out.print("next:")
    steps = list(NEXT_STEPS)
    if result.root.resolve() != Path.cwd().resolve():
        steps.insert(0, (f"cd {shlex.quote(str(result.root))}", "the commands read this folder"))
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        out.print(f"  {shown(command.ljust(width))}  # {why}")
