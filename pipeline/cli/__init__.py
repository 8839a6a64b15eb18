"""The command line: flags in, one ``api`` call, the result rendered.

No loading or business logic lives here. :func:`main` is the one place that turns
exceptions into exit codes: a user's mistake prints its message (never a traceback)
and exits 2; an unexpected error prints a short report and exits 1.

The commands are in :mod:`~pipeline.cli.commands` (the ``cache`` group in
:mod:`~pipeline.cli.cache`), the flags they share in :mod:`~pipeline.cli.options` and
what they print in :mod:`~pipeline.cli.render`.
"""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from pipeline.cli.commands import cli
from pipeline.cli.render import err
from pipeline.errors import EXIT_INTERRUPTED, EXIT_USAGE, PipelineError, SpecErrors

__all__ = ["cli", "main"]


def _report(exc: BaseException) -> int:
    if isinstance(exc, SpecErrors):
        for e in exc.errors:
            err.print(f"[red]error:[/red] {escape(e.render())}")
        err.print(f"{len(exc.errors)} errors")
        return exc.exit_code
    if isinstance(exc, PipelineError):
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return exc.exit_code
    raise exc


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``assetpipe`` and ``python -m pipeline``; maps errors to exit codes."""
    try:
        code = cli.main(args=argv, prog_name="assetpipe", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except PipelineError as exc:
        sys.exit(_report(exc))
    sys.exit(code if isinstance(code, int) else 0)
