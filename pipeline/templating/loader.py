"""Reading template files: from one folder, and nothing reached through it.

A spec names its template (``template: banner.j2``) and a template includes others, so
file names come from whoever wrote the spec. The loader keeps every read inside the
project's ``templates/`` folder and refuses, with a message of its own, whatever a
prompt has no business reading: hidden files (``.env``, ``.git/config``), links out of
the folder, files too large to be a template, unreadable or not UTF-8.
"""

from __future__ import annotations

import itertools
import os
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
from jinja2.loaders import split_template_path

from pipeline.reads import note_read

MAX_TEMPLATE_BYTES = 1024 * 1024
HIDDEN_HINT = (
    "hidden files and folders (.env, .git/) hold settings and secrets, not prompts; "
    "give the template a name that does not start with '.'"
)


class TemplateFileRefused(Exception):
    """A template file that exists but may not be read (hidden, a link out of templates/,
    too large, unreadable, not UTF-8)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


class ContainedLoader(jinja2.FileSystemLoader):
    """Loads templates from one folder and nothing reached through it.

    FileSystemLoader already refuses ``..`` in names; a file that is a symbolic link out
    of the folder would still be read, so a template could pull ``~/.aws/credentials``
    into a prompt that is sent to the API and written to the manifest. Hidden files and
    folders are refused too: with ``templates: .`` the folder is the project, and
    ``{% include '.env' %}`` or ``.git/config`` would be read the same way. Files too
    large to be a prompt template, unreadable, or not UTF-8 are refused with their own
    message.
    """

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        _refuse_hidden(template, pieces)
        filename = Path(posixpath.join(str(self.folder), *pieces))
        try:
            if filename.is_file():
                self._check_file(template, filename)
            found = super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            note_read(filename, None)
            raise
        except UnicodeDecodeError as exc:
            raise TemplateFileRefused(
                f"template '{template}' is not UTF-8 text (byte {exc.start:,})",
                "save the file with the UTF-8 encoding",
            ) from None
        except OSError as exc:
            raise TemplateFileRefused(
                f"template '{template}' cannot be read: {exc.strerror or exc}",
                "check that the file is readable",
            ) from None
        note_read(filename, found[0].encode(self.encoding))
        return found

    def _check_file(self, template: str, filename: Path) -> None:
        real, base = filename.resolve(), self.folder.resolve()
        if not real.is_relative_to(base):
            raise TemplateFileRefused(
                f"template '{template}' is a symbolic link to a file outside the templates folder",
                "keep templates inside the templates folder; copy the file in rather than link it",
            )
        size = real.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateFileRefused(
                f"template '{template}' is {size:,} bytes; a template may have at most "
                f"{MAX_TEMPLATE_BYTES:,}",
                "a prompt is at most 32,000 characters; split the template or shorten it",
            )

    def list_templates(self) -> list[str]:
        """The templates a name may refer to, for a did-you-mean: no hidden file or
        folder, and at most MAX_LISTED (``templates: .`` makes it the whole project)."""
        return sorted(itertools.islice(self._walk(), MAX_LISTED))

    def _walk(self) -> Iterator[str]:
        for folder, dirs, files in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(folder).relative_to(self.folder)
            for name in sorted(files):
                if not name.startswith("."):
                    yield (rel / name).as_posix()


MAX_LISTED = 1_000


def _refuse_hidden(template: str, pieces: list[str]) -> None:
    """Refuse a template name with a part that starts with '.'."""
    for i, piece in enumerate(pieces):
        if piece.startswith("."):
            where = (
                "is a hidden file"
                if i == len(pieces) - 1
                else f"is inside the hidden folder '{'/'.join(pieces[: i + 1])}'"
            )
            raise TemplateFileRefused(
                f"template '{template}' {where}; templates never read hidden files or folders",
                HIDDEN_HINT,
            )
