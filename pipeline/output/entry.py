"""One line of the manifest as a typed record, validated as it is read.

The manifest is untrusted (anyone can edit it, a CI artifact can carry anything), and
every reader used to pick fields out of a ``dict`` by string key and guess their types.
:meth:`ManifestEntry.from_json` checks each field's type once, where the file is read; an
entry that fails is dropped (its file is then checked again, never trusted), and from
there on every reader gets attributes of known types. :meth:`ManifestEntry.as_json`
writes the same keys in the same order as always, so manifests diff cleanly across
versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_INT = (int,)
_NUMBER = (int, float)
_STR = (str,)
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_DICT = (dict, type(None))
_OPT_LIST = (list, type(None))
_FIELDS: Mapping[str, tuple[type, ...]] = {
    "job": _STR,
    "collection": _STR,
    "asset": _STR,
    "variant": _INT,
    "kind": _STR,
    "path": _STR,
    "sha256": _OPT_STR,
    "bytes": _OPT_INT,
    "mtime_ns": _OPT_INT,
    "width": _OPT_INT,
    "height": _OPT_INT,
    "format": _STR,
    "model": _STR,
    "provider": _STR,
    "prompt": _STR,
    "params": (dict,),
    "requested_size": _STR,
    "returned_size": _OPT_STR,
    "inputs": (list,),
    "cache_key": _OPT_STR,
    "status": _STR,
    "error": _OPT_DICT,
    "usage": _OPT_DICT,
    "cost_usd": _NUMBER,
    "estimated_cost_usd": _NUMBER,
    "request_id": _OPT_STR,
    "source": _STR,
    "checks": _OPT_LIST,
    "phash": _OPT_STR,
    "provenance": _OPT_DICT,
    "companions": _OPT_LIST,
    "via": _OPT_STR,
    "batch_id": _OPT_STR,
    "ops": _OPT_LIST,
    "transparency": _OPT_DICT,
}
"""Each field the manifest writes, in the order it writes them, and the JSON types it may
hold. ``job``, ``path``, ``kind`` and ``status`` are required; any other missing field
takes its default (manifests of older versions lack some)."""
_REQUIRED = ("job", "path", "kind", "status")


@dataclass(frozen=True, slots=True)
class Companion:
    """A file written beside an entry's own (a sheet's atlas JSON)."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A delivered (or failed) job's file and how it was made (the format is in docs/cli.md)."""

    job: str
    path: str
    kind: str
    status: str
    collection: str = ""
    asset: str = ""
    variant: int = 1
    sha256: str | None = None
    bytes: int | None = None
    mtime_ns: int | None = None
    width: int | None = None
    height: int | None = None
    format: str = ""
    model: str = ""
    provider: str = ""
    prompt: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    requested_size: str = ""
    returned_size: str | None = None
    inputs: tuple[str, ...] = ()
    cache_key: str | None = None
    error: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None
    cost_usd: float = 0.0
    estimated_cost_usd: float = 0.0
    request_id: str | None = None
    source: str = ""
    checks: tuple[Mapping[str, Any], ...] | None = None
    phash: str | None = None
    provenance: Mapping[str, Any] | None = None
    companions: tuple[Companion, ...] | None = None
    via: str | None = None
    """``batch`` when the image came through the Batch API (absent: a direct call)."""
    batch_id: str | None = None
    ops: tuple[Mapping[str, Any], ...] | None = None
    """The image operations applied to the file (``op``, ``params``, ``version`` each), in
    order; None when it had none."""
    transparency: Mapping[str, Any] | None = None
    """How a transparent background was made when not by the API: ``{"route": "chroma",
    "key": "#FF00FF"}`` (a flat key color asked for and keyed out here); None otherwise."""
    stale: bool = False
    """An earlier build's file that no job makes any more (kept unless ``--prune``)."""

    @property
    def is_api(self) -> bool:
        """Whether a paid call made this file."""
        return self.kind in ("generate", "edit")

    @classmethod
    def from_json(cls, raw: object) -> ManifestEntry | None:
        """The entry in ``raw`` (one item of the manifest's ``entries``), or None when a
        required field is missing or any field has a type assetpipe never writes."""
        if not isinstance(raw, dict):
            return None
        if any(name not in raw for name in _REQUIRED):
            return None
        for name, types in _FIELDS.items():
            if name in raw:
                value = raw[name]
                if isinstance(value, bool) or not isinstance(value, types):
                    return None
        inputs = raw.get("inputs") or []
        checks = raw.get("checks")
        try:
            companions = _companions(raw.get("companions"))
        except TypeError:
            return None
        if not all(isinstance(i, str) for i in inputs):
            return None
        if checks is not None and not all(_check_ok(c) for c in checks):
            return None
        stale = raw.get("stale", False)
        if not isinstance(stale, bool):
            return None
        ops = raw.get("ops")
        if ops is not None and not all(_op_ok(o) for o in ops):
            return None
        transparency = raw.get("transparency")
        if transparency is not None and not all(
            isinstance(transparency.get(k), str) for k in ("route", "key")
        ):
            return None
        fields = {name: raw[name] for name in _FIELDS if name in raw}
        fields.update(
            inputs=tuple(inputs),
            checks=tuple(checks) if checks is not None else None,
            companions=companions,
            ops=tuple(ops) if ops is not None else None,
            cost_usd=float(raw.get("cost_usd") or 0.0),
            estimated_cost_usd=float(raw.get("estimated_cost_usd") or 0.0),
            stale=stale,
        )
        return cls(**fields)

    def as_json(self) -> dict[str, Any]:
        """The entry as the manifest writes it: every field, in a fixed order."""
        out: dict[str, Any] = {
            "job": self.job,
            "collection": self.collection,
            "asset": self.asset,
            "variant": self.variant,
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "mtime_ns": self.mtime_ns,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "model": self.model,
            "provider": self.provider,
            "prompt": self.prompt,
            "params": dict(self.params),
            "requested_size": self.requested_size,
            "returned_size": self.returned_size,
            "inputs": list(self.inputs),
            "cache_key": self.cache_key,
            "status": self.status,
            "error": dict(self.error) if self.error is not None else None,
            "usage": dict(self.usage) if self.usage is not None else None,
            "cost_usd": self.cost_usd,
            "estimated_cost_usd": self.estimated_cost_usd,
            "request_id": self.request_id,
            "source": self.source,
            "checks": [dict(c) for c in self.checks] if self.checks is not None else None,
            "phash": self.phash,
            "provenance": dict(self.provenance) if self.provenance is not None else None,
            "companions": (
                [{"path": c.path, "sha256": c.sha256} for c in self.companions]
                if self.companions is not None
                else None
            ),
        }
        if self.via is not None:  # only then: manifests of direct builds stay as they were
            out["via"] = self.via
            out["batch_id"] = self.batch_id
        if self.ops is not None:  # only then: manifests without operations stay as they were
            out["ops"] = [dict(o) for o in self.ops]
        if self.transparency is not None:  # only when the chroma route made the file
            out["transparency"] = dict(self.transparency)
        if self.stale:
            out["stale"] = True
        return out

    def failed_checks(self) -> list[Mapping[str, Any]]:
        """The quality checks recorded as failed."""
        return [c for c in self.checks or () if c.get("ok") is not True]


def _check_ok(check: object) -> bool:
    """A recorded quality check: an object with a string name and a boolean ``ok``."""
    return (
        isinstance(check, dict)
        and isinstance(check.get("name"), str)
        and isinstance(check.get("ok"), bool)
    )


def _op_ok(op: object) -> bool:
    """A recorded operation: its name, its parameters and its version."""
    return (
        isinstance(op, dict)
        and isinstance(op.get("op"), str)
        and isinstance(op.get("params"), dict)
        and isinstance(op.get("version"), int)
        and not isinstance(op.get("version"), bool)
    )


def _companions(raw: object) -> tuple[Companion, ...] | None:
    """The companions list as records (None when absent); TypeError when malformed."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise TypeError("companions is not a list")
    out = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("path"), str)
            and isinstance(item.get("sha256"), str)
        ):
            raise TypeError("a companion is not a path and a sha256")
        out.append(Companion(item["path"], item["sha256"]))
    return tuple(out)
