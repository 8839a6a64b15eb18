"""What a delivered file's Content Credentials say: the API's manifest, and ours.

The manifest entry's ``provenance`` gains ``original`` (the verdict on the manifest the
API signed: valid, who signed it, which generator, whether it says AI-made) and, for a
file re-signed with the team's credentials, ``signed`` (the same of the delivered file).
Both are written only when there is something to say, and both come from the memo by
sha256 once read (:mod:`pipeline.store.memo`), so a rebuild reads no manifest again. A
manifest that does not validate is a failing ``c2pa`` check: the build lists it with the
other failed checks, and ``--strict-checks`` fails on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.hashing import sha256_bytes
from pipeline.postprocess.c2pa_read import Verdict, read_verdict
from pipeline.store import Inspection, InspectionMemo

SUMMARY = ("valid", "signer", "generator", "ai_generated", "failures", "error", "detail")
"""What the manifest entry keeps of a verdict (the memo keeps it all)."""


def verdict(memo: InspectionMemo, sha: str, data: bytes | None) -> Verdict | None:
    """The verdict on the bytes with ``sha``: the memo's, else read from ``data`` (when
    given) and remembered; None when they carry no manifest (or were not read)."""
    known = memo.inspection(sha)
    if known is not None and known.c2pa_verdict is not None:
        return dict(known.c2pa_verdict)
    if data is None:
        return None
    found = read_verdict(data)
    if found is not None and found.get("valid") is not None:  # "not installed" is not kept
        memo.remember(sha, Inspection(c2pa_verdict=found))
    return found


def original_verdict(
    memo: InspectionMemo, original: bytes | None, sha: str | None
) -> Verdict | None:
    """The verdict on the API's bytes behind a delivered file: ``original`` when read,
    else only the memo's of ``sha`` (when known); None for a file with no API image."""
    if original is not None:
        return verdict(memo, sha or sha256_bytes(original), original)
    return verdict(memo, sha, None) if sha is not None else None


def c2pa_provenance(
    provenance: Mapping[str, Any],
    memo: InspectionMemo,
    sha: str,
    written: bytes,
    original: Verdict | None,
) -> dict[str, Any]:
    """``provenance`` with ``original`` and ``signed`` added where there is something to
    say: ``signed`` only for a re-encoded file that carries a manifest (ours)."""
    out = dict(provenance)
    if original is not None:
        out["original"] = _summary(original)
    if provenance.get("reencoded") and provenance.get("c2pa"):
        mine = verdict(memo, sha, written)
        if mine is not None:
            out["signed"] = _summary(mine)
    return out


def c2pa_check(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``c2pa`` check of a file whose manifests were validated: failed when the
    API's manifest or ours does not validate (tampered bytes, a broken store)."""
    found = [
        (which, record)
        for which, record in (
            ("the API's", provenance.get("original")),
            ("its", provenance.get("signed")),
        )
        if isinstance(record, Mapping) and record.get("valid") is not None
    ]
    if not found:
        return []
    bad = [(which, record) for which, record in found if record.get("valid") is False]
    if bad:
        which, record = bad[0]
        why = record.get("error") or ", ".join(record.get("failures") or ()) or "invalid"
        detail = f"{which} C2PA manifest does not validate: {why}"
        return [{"name": "c2pa", "ok": False, "detail": detail, "value": None}]
    signers = ", ".join(str(r.get("signer") or "unknown") for _, r in found)
    detail = f"C2PA manifest valid (signed by {signers})"
    return [{"name": "c2pa", "ok": True, "detail": detail, "value": None}]


def _summary(found: Verdict) -> dict[str, Any]:
    return {name: found[name] for name in SUMMARY if name in found}
