"""The one exception tree of assetpipe.

Every error a user can cause is a :class:`PipelineError` whose message is written for
that user: what is wrong, where (``file:line:col``), and what would be right. The CLI
maps these to exit codes in one place and never shows a traceback for them.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_PENDING = 4
"""Requests wait in an open batch (``build --batch --no-wait``); the next ``build --batch``
collects them."""
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a user's file: 1-based line and column, as editors count them."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class PipelineError(Exception):
    """Base of every error assetpipe reports to a user; carries its exit code."""

    exit_code: int = EXIT_FAILED


class UsageError(PipelineError):
    """Bad command-line usage or settings (exit 2)."""

    exit_code = EXIT_USAGE


class SpecError(PipelineError):
    """A mistake in a spec, brand kit, template or settings file, at a known place (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Format as ``file:line:col: message (hint)``, the shape editors can jump to."""
        where = f"{printable(str(self.location))}: " if self.location else ""
        hint = f"\n  hint: {printable(self.hint)}" if self.hint else ""
        return f"{where}{printable(self.message)}{hint}"


class SpecErrors(PipelineError):
    """Several spec errors found in one pass, so a user fixes them all at once."""

    exit_code = EXIT_USAGE

    def __init__(self, errors: Sequence[SpecError]):
        self.errors = tuple(errors)
        super().__init__("\n".join(e.render() for e in self.errors))


class ProjectLocked(PipelineError):
    """Another assetpipe process is building the same project."""

    exit_code = EXIT_FAILED


UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories escaped in messages: controls (newlines, ANSI escapes), format
characters (bidi overrides), surrogates (undecodable file names), line separators."""


def printable(text: str) -> str:
    """``text`` with every control character escaped as Python writes it (``\\n``,
    ``\\x1b``, ``\\x9b``).

    The one escaping of text assetpipe did not write itself (a spec, a server's error, a
    cache record, the lock file, a manifest) on its way to a terminal or a log: C0 controls
    (newlines and tabs too), DEL and the C1 controls, so such text can neither forge a
    line, move the cursor, retitle the terminal nor plant a hyperlink."""
    if text.isprintable():
        return text
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in UNPRINTABLE else ch for ch in text)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a ``did you mean 'x'?`` hint for a misspelt name, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def raise_collected(errors: Sequence[SpecError]) -> None:
    """Raise the collected errors: one as itself, several together, none not at all."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)


ECHO_CHARS = 60
"""Characters of a user's value shown in an error: enough to recognise it, and a value of
100,000 characters (or one full of escapes) does not fill the terminal."""


def shortened(text: str, limit: int = ECHO_CHARS + 1) -> str:
    """``text`` in at most ``limit`` characters, ending in an ellipsis when it was cut (by
    default the first :data:`ECHO_CHARS` of it and the ellipsis)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
