"""The flags every command shares, and how they become an ``api.Request``.

Kept apart from the commands so that each command reads as its own flags plus one
``api`` call, and a flag common to all of them is defined (and documented) once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline import api
from pipeline.errors import printable
from pipeline.providers.registry import BUILTIN as BUILTIN_PROVIDERS

if TYPE_CHECKING:
    from pipeline.jobs.shards import Shard

    ShardParam = click.ParamType[Shard]
else:  # the shard type loads the job graph's types only when a --shard is given
    ShardParam = click.ParamType

REMOTE_MODES = ("read-write", "read-only")
"""``pipeline.store.REMOTE_MODES``, written out so ``--help`` loads no store
(tests/test_output_truth.py holds the two equal)."""

F = TypeVar("F", bound=Callable[..., Any])


def project_options(func: F) -> F:
    """Options shared by every command that reads a project."""
    options = [
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
        click.option(
            "--project",
            "project",
            type=click.Path(path_type=Path),
            default=Path(),
            show_default=True,
            help="The project folder (with specs/ and templates/).",
        ),
        click.option(
            "--provider",
            metavar="NAME",
            help=f"Image backend: {', '.join(e.name for e in BUILTIN_PROVIDERS)} or a plugin's. "
            "Default: openai when OPENAI_API_KEY is set, else preview.",
        ),
        click.option("--model", help="Project default model (assets and spec defaults win)."),
        click.option("--output", type=str, help="Output folder (default output/)."),
        click.option("--cache-dir", type=str, help="Cache folder (default .assetpipe/)."),
        *remote_options(),
        click.option(
            "--only",
            multiple=True,
            metavar="GLOB",
            help="Only jobs whose id matches (and what they depend on). Repeatable.",
        ),
        click.option(
            "--max-jobs",
            type=int,
            help="Refuse plans with more jobs, renditions and sheets included (10,000).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors and the summary."),
        click.option("-v", "--verbose", is_flag=True, help="Log every request and retry."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def project_request(kw: dict[str, Any], extra: dict[str, Any] | None = None) -> api.Request:
    """The request a project command makes: its project, paths, ``--only`` and flags."""
    flags = {
        "provider": kw.get("provider"),
        "model": kw.get("model"),
        "output": kw.get("output"),
        "cache_dir": kw.get("cache_dir"),
        "max_jobs": kw.get("max_jobs"),
        "remote_cache": kw.get("remote_cache"),
        "remote_cache_mode": kw.get("remote_cache_mode"),
        **(extra or {}),
    }
    return api.Request(
        project=kw["project"],
        paths=tuple(kw.get("paths") or ()),
        flags=flags,
        only=tuple(kw.get("only") or ()),
        shard=kw.get("shard"),
    )


def remote_options() -> list[Callable[[F], F]]:
    """``--remote-cache`` and ``--remote-cache-mode``: the team's shared cache
    (docs/caching.md); over ``ASSETPIPE_REMOTE_CACHE[_MODE]`` and ``remote_cache:``."""
    return [
        click.option(
            "--remote-cache",
            metavar="URL",
            help="Shared cache s3://bucket/prefix (AWS_* variables give access).",
        ),
        click.option(
            "--remote-cache-mode",
            type=click.Choice(REMOTE_MODES),
            help="read-write shares what this build pays for; read-only never writes.",
        ),
    ]


class ShardType(ShardParam):
    """``i/n``, a CI machine's share of the plan (:mod:`pipeline.jobs.shards`)."""

    name = "i/n"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Shard:
        from pipeline.jobs.shards import Shard  # noqa: PLC0415

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def shard_option(func: F) -> F:
    """``--shard i/n`` of ``build``, ``plan`` and ``check``."""
    return click.option(
        "--shard",
        type=ShardType(),
        help="Only shard i of n: whole dependency chains, so shards never wait on each other.",
    )(func)


def cache_options(func: Any) -> Any:
    """Options of the ``cache`` commands: they read only the project's cache folder."""
    func = click.option("--cache-dir", type=str, help="Cache folder (default .assetpipe/).")(func)
    return click.option(
        "--project",
        "project",
        type=click.Path(path_type=Path),
        default=Path(),
        help="The project folder.",
    )(func)


def cache_request(kw: dict[str, Any]) -> api.Request:
    """The request a ``cache`` command makes (with logging set up, see below)."""
    setup_logging(verbose=False, quiet=False)  # a broken record's warning reaches stderr
    flags = {
        "cache_dir": kw.get("cache_dir"),
        "provider": "preview",
        "remote_cache": kw.get("remote_cache"),
        "remote_cache_mode": kw.get("remote_cache_mode"),
    }
    return api.Request(project=kw["project"], flags=flags)


class PrintableFormatter(logging.Formatter):
    """Log lines whose message has its control characters escaped.

    Warnings quote what assetpipe did not write: paths from a hand-edited manifest, a
    shared cache's error, a library's message about a server's answer. One record is one
    line, whatever those hold; a traceback, which is assetpipe's own, is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


def setup_logging(verbose: bool, quiet: bool) -> None:
    """assetpipe's own loggers follow -v/-q; libraries (the SDK, HTTP) stay at warnings,
    so -v never prints request internals such as headers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s: %(message)s"))
    logging.basicConfig(
        level=logging.ERROR if quiet else logging.WARNING,
        handlers=[handler],
        force=True,
    )
    logging.getLogger("assetpipe").setLevel(
        logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    )
