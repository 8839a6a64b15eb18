"""The command line: flags in, one ``api`` call, the result rendered.

No loading or business logic lives here. :func:`main` is the one place that turns
exceptions into exit codes: a user's mistake prints its message (never a traceback)
and exits 2; an unexpected error prints a short report and exits 1.

The commands are in :mod:`~pipeline.cli.commands` (the ``cache`` group in
:mod:`~pipeline.cli.cache`), the flags they share in :mod:`~pipeline.cli.options` and
what they print in :mod:`~pipeline.cli.render`.
"""

from __future__ import annotations

import logging
import os
import sys

import click
from rich.markup import escape

from pipeline.cli.commands import cli
from pipeline.cli.render import counted, err, shown
from pipeline.collecting import start_quietly
from pipeline.errors import EXIT_INTERRUPTED, EXIT_USAGE, PipelineError, SpecError, SpecErrors

__all__ = ["cli", "main", "run"]


def _report(exc: BaseException) -> int:
    if isinstance(exc, SpecErrors):
        for e in exc.errors:
            err.print(f"[red]error:[/red] {escape(e.render())}")
        err.print(counted(len(exc.errors), "error"))
        return exc.exit_code
    if isinstance(exc, PipelineError):
        err.print(f"[red]error:[/red] {_message(exc)}")
        return exc.exit_code
    raise exc


def _message(exc: PipelineError) -> str:
    """An error's message as markup. A spec error renders itself, every field escaped and
    its hint on a line of its own; any other message is escaped whole, since it may quote
    a server, a cache record or the lock file, and one error is one line."""
    if isinstance(exc, SpecError):
        return escape(exc.render())
    return shown(exc)


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


def run() -> None:
    """The ``assetpipe`` command: :func:`main`, then an exit without the interpreter's
    teardown.

    Tearing down frees every object one by one (~80,000 once the OpenAI SDK is loaded:
    a third of a second on a small machine, after the work is done) although the system
    takes the memory back at once. By the time :func:`main` exits, every file assetpipe
    wrote is closed (each by its context manager) and renamed into place, and the runner's
    threads are joined; what is left is flushed here. An exception that is not an exit
    takes the ordinary way out, traceback and all.

    The cyclic garbage collector waits while the command starts (imports, settings, the
    plan: objects that live on) until its long work begins (:mod:`pipeline.collecting`).
    """
    start_quietly()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - main always exits
        code = 0
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # e.g. stdout was a closed pipe: the output was not delivered
    os._exit(code or 0)
