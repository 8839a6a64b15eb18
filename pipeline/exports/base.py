"""What an exporter is: a name, an options model, the paths it keeps, and a pure render.

An exporter turns the manifest's entries into files of its own (the gallery page today; a
TypeScript, C# or GDScript table of the assets). Its ``render`` returns those files as
bytes and writes nothing itself, so the build can compare them with what is on disk and
leave an unchanged file untouched, write each one atomically, and keep every path inside
the output folder whatever a third-party exporter returns. The paths an exporter
*reserves* are known before anything is built: no job, and no other exporter, may write
there, and ``--prune`` never deletes there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from pipeline.errors import PipelineError
from pipeline.output import ManifestEntry, OutputTree

if TYPE_CHECKING:
    from pipeline.jobs import Plan
    from pipeline.spec.lock import Lock

OUTPUT = "output"
"""An exporter's paths are relative to the output folder (the default)."""
PROJECT = "project"
"""An exporter's paths are relative to the project folder (a game's source tree): set
``root = PROJECT`` on the class. Such a path stays out of the output, cache, specs and
templates folders and out of every hidden folder (``.git/``), and is written through no
link, as output files are."""
ROOTS = (OUTPUT, PROJECT)


def root_of(exporter: object) -> str:
    """Where an exporter's paths start: its ``root`` (:data:`OUTPUT` or :data:`PROJECT`),
    the output folder when it names none."""
    root = getattr(exporter, "root", OUTPUT)
    return root if root in ROOTS else OUTPUT


class ExportOptions(BaseModel):
    """The base of every exporter's options: unknown keys are errors (with a
    did-you-mean at their line in ``assetpipe.yaml``), and options never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportError(PipelineError):
    """An exporter returned something assetpipe will not write (a path outside what it
    reserved, or not bytes)."""


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What an exporter may read besides the manifest entries.

    ``tree`` is the output folder (read a delivered file through it, never by a bare
    path); ``plan`` and ``lock`` are the project's full plan and ``assetpipe.lock``.
    """

    tree: OutputTree
    title: str
    """The project's display name (``assetpipe: <folder>``)."""
    plan: Plan
    lock: Lock
    provider: str
    free: bool
    """Whether the provider draws placeholders that cost nothing (``preview``)."""
    project: OutputTree | None = None
    """The project folder, for an exporter whose ``root`` is :data:`PROJECT` (written
    by assetpipe, as ``tree`` is; an exporter only reads through it)."""


@runtime_checkable
class Exporter(Protocol):
    """One configured exporter. A class implements it with ``__init__(options)``, where
    ``options`` is an instance of its ``Options``; the registry names the class."""

    name: ClassVar[str]
    """The ``format:`` that names it in ``exports:``."""
    Options: ClassVar[type[ExportOptions]]
    """What its ``exports:`` entry may hold besides ``format``."""

    def reserved(self) -> Sequence[str]:
        """Output-relative paths (files, or folders it alone writes in) it keeps;
        project-relative for an exporter whose ``root`` is :data:`PROJECT`."""
        ...

    def render(self, entries: Sequence[ManifestEntry], plan: ExportPlan) -> Mapping[str, bytes]:
        """Its files: output-relative path -> bytes. No API call, no network."""
        ...


@runtime_checkable
class Tidies(Protocol):
    """An exporter that also has work once its files are in place (the gallery removes
    thumbnails its new page no longer shows)."""

    def tidy(self, plan: ExportPlan) -> None:
        """Called after the files of :meth:`Exporter.render` were written."""
        ...


@runtime_checkable
class Prepares(Protocol):
    """An exporter class with work that needs no entries (the gallery compiles its page
    template). A build that sends requests has it done on a thread of its own while the
    requests are out, so what follows the build is that much shorter; a failure there is
    left for :meth:`Exporter.render` to meet and report."""

    @classmethod
    def prepare(cls) -> None:
        """Do now what rendering would otherwise begin with."""
        ...


@runtime_checkable
class Names(Protocol):
    """An exporter that names each id in code (the asset indexes): two ids it would give
    one name are an error of ``validate``, ``plan`` and ``build``, before anything is
    paid for, naming both ids at their spec lines."""

    def identifier(self, asset_id: str) -> str:
        """The name of ``asset_id`` (a job's id, or a sheet frame's)."""
        ...


_PART = re.compile(r"[^\x00-\x1f\\:*?\"<>|]+")


def path_problem(path: object) -> str | None:
    """Why ``path`` cannot be an exporter's output-relative path, or None when it can:
    relative, ``/``-separated, no ``..``, ``.`` or empty part, no characters that some file
    system refuses, and not one of the files the output tree itself keeps."""
    if not isinstance(path, str) or not path:
        return "it must be a non-empty relative path"
    if path.startswith("/") or PurePosixPath(path).is_absolute():
        return "it must be relative to the output folder, not absolute"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "it may not contain '..', '.' or empty parts"
    if not all(_PART.fullmatch(part) for part in parts):
        return 'it may not contain control characters or \\ : * ? " < > |'
    return None


def covers(reserved: str, path: str) -> bool:
    """Whether ``path`` is the reserved path or lies in it (a reserved folder)."""
    return path == reserved or path.startswith(reserved + "/")
