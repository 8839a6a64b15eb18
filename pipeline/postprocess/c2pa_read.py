"""Reading and validating the C2PA manifest of an image with the official library.

OpenAI signs every image it returns; whether that signature still holds (nobody changed
a pixel since), who signed it and whether it says the image is AI-made is what a buyer
of the asset may be asked to prove. The answer is a small JSON-able verdict, memoised by
the bytes' sha256 like every other inspection, so a rebuild reads nothing again.

Everything read is untrusted: a manifest may be malformed or hostile, so any error of the
library becomes an ``invalid`` verdict naming it, never an exception. The library
(``c2pa-python``, the ``c2pa`` extra) is imported here only, and only when an image
carries a manifest store; without it a verdict says so instead of guessing.

Validity is the manifest's own integrity (its signature over the claim, and the claim's
hashes over the bytes): ``valid`` does not depend on trust lists. Whether the signing
certificate chains to a trust anchor configured in the library is recorded apart, as
``trusted`` (no anchors are configured by assetpipe, so it is normally false).
"""

from __future__ import annotations

import io
import json
from typing import Any, Final

from pipeline.postprocess.provenance import has_c2pa

AI_SOURCE_TYPES: Final = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
"""IPTC digital source types that say an image was made (or partly made) by a model."""
NOT_INSTALLED: Final = "not verified: install assetpipe[c2pa]"
MAX_TEXT: Final = 200
MAX_CODES: Final = 8
READER_SETTINGS: Final = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
"""Reading never goes to the network: a manifest's remote URL or OCSP responder is the
sender's choice, and a build must not call it."""

Verdict = dict[str, Any]
"""``{"valid", "trusted", "signer", "issuer", "generator", "ai_generated"}`` (and
``failures`` when invalid), or ``{"valid": False, "error"}`` for a store the library
cannot read, or ``{"valid": None, "detail"}`` when it could not be checked."""


def available() -> bool:
    """Whether the C2PA library is installed (the ``c2pa`` extra)."""
    try:
        import c2pa  # type: ignore[import-untyped,unused-ignore]  # noqa: F401, PLC0415 - the optional native library, loaded when used
    except ImportError:
        return False
    return True


def mime_type(data: bytes) -> str | None:
    """The MIME type of the image formats assetpipe delivers, from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_verdict(data: bytes) -> Verdict | None:
    """The verdict on ``data``'s C2PA manifest; None when it carries none (nothing to say).

    Never raises: a store the library cannot read is an invalid verdict naming why."""
    if not may_hold_store(data):
        return None
    try:
        import c2pa  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - the optional native library, loaded when used
    except ImportError:
        return {"valid": None, "detail": NOT_INSTALLED}
    mime = mime_type(data)
    if mime is None:
        return {"valid": False, "error": "a C2PA store in a file of unknown format"}
    try:
        context = c2pa.Context.from_dict(READER_SETTINGS)
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            return None
        with reader:
            state = reader.get_validation_state()
            store = json.loads(reader.json())
    except Exception as exc:  # untrusted bytes: any failure is a verdict
        return {"valid": False, "error": _text(f"unreadable C2PA manifest: {exc}")}
    return verdict_of(store, state)


def may_hold_store(data: bytes) -> bool:
    """Whether ``data`` may carry a C2PA manifest store: False means there is no verdict
    to read, nor any to believe from elsewhere."""
    return has_c2pa(data) and png_may_hold_store(data)


def png_may_hold_store(data: bytes) -> bool:
    """False only for a whole PNG that cannot carry a C2PA manifest: C2PA embeds one in a
    PNG's ``caBX`` chunk, or names a remote one in its XMP, and this file has neither
    (the bytes ``has_c2pa`` looks for are elsewhere: in a text chunk, say). Opening the
    library to be told there is nothing costs a millisecond or two a file; anything but
    a PNG walked to its ``IEND`` is left to the library."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return True
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"caBX":
            return True
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data[pos + 8 : pos + 8 + length].startswith(
            b"XML:com.adobe.xmp\x00"
        ):
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length
    return True


def verdict_of(store: object, state: object) -> Verdict:
    """The verdict on a manifest store as the library reports it (``reader.json()``)."""
    if not isinstance(store, dict):
        return {"valid": False, "error": "the C2PA manifest store is not an object"}
    manifests = store.get("manifests")
    active = manifests.get(store.get("active_manifest")) if isinstance(manifests, dict) else None
    if not isinstance(active, dict):
        return {"valid": False, "error": "the C2PA store has no active manifest"}
    signature = active.get("signature_info")
    signature = signature if isinstance(signature, dict) else {}
    verdict: Verdict = {
        "valid": state in ("Valid", "Trusted"),
        "trusted": state == "Trusted",
        "signer": _optional_text(signature.get("common_name") or signature.get("issuer")),
        "issuer": _optional_text(signature.get("issuer")),
        "generator": _generator(active),
        "ai_generated": ai_generated(active),
    }
    if not verdict["valid"]:
        verdict["failures"] = _failures(store) or [_text(f"validation state {state}")]
    return verdict


def ai_generated(manifest: dict[str, Any]) -> bool:
    """Whether an action of the manifest names an AI digital source type."""
    for assertion in manifest.get("assertions") or ():
        if not isinstance(assertion, dict):
            continue
        label = assertion.get("label")
        if not (isinstance(label, str) and label.startswith("c2pa.actions")):
            continue
        data = assertion.get("data")
        actions = data.get("actions") if isinstance(data, dict) else None
        for action in actions if isinstance(actions, list) else ():
            source = action.get("digitalSourceType") if isinstance(action, dict) else None
            if isinstance(source, str) and source.rsplit("/", 1)[-1] in AI_SOURCE_TYPES:
                return True
    return False


def _generator(manifest: dict[str, Any]) -> str | None:
    """The claim generator: its first ``claim_generator_info`` name (and version)."""
    infos = manifest.get("claim_generator_info")
    first = infos[0] if isinstance(infos, list) and infos else None
    if isinstance(first, dict) and isinstance(first.get("name"), str):
        version = first.get("version")
        name = first["name"] + (f" {version}" if isinstance(version, str) else "")
        return _text(name)
    return _optional_text(manifest.get("claim_generator"))


def _failures(store: dict[str, Any]) -> list[str]:
    """The failure codes of the active manifest's validation (trust aside)."""
    results = store.get("validation_results")
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failures = active.get("failure") if isinstance(active, dict) else None
    if not isinstance(failures, list):
        failures = store.get("validation_status")
    codes = [
        _text(f["code"])
        for f in failures or ()
        if isinstance(f, dict) and isinstance(f.get("code"), str)
    ]
    return [c for c in codes if not c.startswith("signingCredential.untrusted")][:MAX_CODES]


def _optional_text(value: object) -> str | None:
    return _text(value) if isinstance(value, str) and value else None


def _text(value: str) -> str:
    """Text from a manifest, printable and short: it is written to the manifest and shown."""
    clean = "".join(c if c.isprintable() else "?" for c in value)
    return clean if len(clean) <= MAX_TEXT else clean[: MAX_TEXT - 1] + "…"
