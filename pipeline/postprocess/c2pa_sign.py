"""Signing a re-encoded file with the team's C2PA credentials.

A crop, a resize or a format change drops the manifest OpenAI signed, so a delivered file
would lose the statement that it is AI-made. With ``provenance: {sign: ...}`` configured,
every re-encoded file gets a new manifest, signed with the team's certificate, that names
the image it was made from as its parent ingredient (with that image's own manifest), the
actions taken, and carries the AI-generated digital source type over. A sheet names every
frame as a component.

The private key lives in :class:`Signing` only as long as the run: its ``repr`` hides it,
and only :attr:`Signing.fingerprint` (the certificate chain, the algorithm and the
timestamp authority, never the key) enters cache keys, so a new certificate re-signs and
an unchanged one costs nothing on a rebuild.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from PIL import Image

from pipeline.postprocess.c2pa_read import mime_type

ALGORITHMS: Final = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
SOURCE: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI_MADE: Final = SOURCE + "trainedAlgorithmicMedia"
AI_COMPOSITE: Final = SOURCE + "compositeWithTrainedAlgorithmicMedia"
SIGNING_VERSION: Final = 1
"""Part of every signed file's key: a change to what is signed re-signs every file."""
BUILDER_SETTINGS: Final = {
    "builder": {"thumbnail": {"enabled": False}},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}
"""No claim thumbnail: a 64x64 icon should not carry a picture of itself three times its
size. Nothing read from the network."""


class SigningError(Exception):
    """The credentials cannot sign (a wrong key, an unusable certificate)."""


@dataclass(frozen=True, slots=True)
class Signing:
    """The team's signing credentials: a PEM certificate chain (end-entity first), its
    PEM private key, the algorithm and an optional RFC 3161 timestamp authority."""

    certs: bytes
    key: bytes = field(repr=False)
    alg: str = "es256"
    tsa_url: str | None = None
    generator: str = "assetpipe"

    @property
    def fingerprint(self) -> str:
        """What decides the signatures, for cache keys: never the key's bytes."""
        digest = hashlib.sha256()
        for part in (f"v{SIGNING_VERSION}", self.alg, self.tsa_url or "", self.generator):
            digest.update(part.encode() + b"\x00")
        digest.update(b"".join(self.certs.split()))
        return digest.hexdigest()[:32]

    def __repr__(self) -> str:
        return f"Signing(alg={self.alg!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True, slots=True)
class Parent:
    """An image a signed file was made from: its bytes and its name."""

    data: bytes
    title: str


def sign(
    signing: Signing,
    data: bytes,
    title: str,
    parents: Sequence[Parent],
    actions: Sequence[str],
    *,
    composite: bool = False,
) -> bytes:
    """``data`` with a new manifest signed by ``signing``.

    One parent is the ``parentOf`` ingredient, opened and then changed by ``actions``
    (``c2pa.resized``, ``c2pa.cropped``, ``c2pa.converted``, ``c2pa.edited``); a
    ``composite`` (a sheet) is created from its parents, each a ``componentOf``
    ingredient placed in it. Raises :class:`SigningError` when the library refuses."""
    import c2pa  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - the optional native library, loaded when used

    mime = mime_type(data)
    if mime is None:
        raise SigningError("only PNG, JPEG and WebP files can be signed")
    ingredients = []
    steps: list[dict[str, object]] = []
    if composite:
        steps.append({"action": "c2pa.created", "digitalSourceType": AI_COMPOSITE})
        for i, parent in enumerate(parents):
            label = f"frame{i}"
            ingredients.append((label, "componentOf", parent))
            steps.append({"action": "c2pa.placed", "parameters": {"ingredientIds": [label]}})
    else:
        ingredients = [("parent", "parentOf", parent) for parent in parents[:1]]
        opened: dict[str, object] = {"action": "c2pa.created", "digitalSourceType": AI_MADE}
        if ingredients:
            opened.update(action="c2pa.opened", parameters={"ingredientIds": ["parent"]})
        steps.append(opened)
        steps.extend({"action": name} for name in actions)
    definition = {
        "claim_generator_info": [{"name": signing.generator}],
        "title": title,
        "format": mime,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": steps}}],
    }
    try:
        info = c2pa.C2paSignerInfo(signing.alg, signing.certs, signing.key, signing.tsa_url)
        signer = c2pa.Signer.from_info(info)
        context = c2pa.Context.from_dict(BUILDER_SETTINGS)
        with signer, c2pa.Builder(definition, context) as builder:
            for label, relationship, parent in ingredients:
                parent_mime = mime_type(parent.data) or "image/png"
                spec = {"title": parent.title, "relationship": relationship, "label": label}
                builder.add_ingredient(spec, parent_mime, io.BytesIO(parent.data))
            out = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(data), out)
    except Exception as exc:  # the library's errors, and ours of decoding the PEM text
        # The message never holds the key: the library names what failed, not the input.
        raise SigningError(f"C2PA signing failed: {type(exc).__name__}: {exc}") from None
    return out.getvalue()


def check_signing(signing: Signing) -> None:
    """Sign a tiny PNG: a key that does not match its certificate, or a certificate the
    library refuses, is found before a build writes anything. Raises
    :class:`SigningError`."""
    pixel = io.BytesIO()
    Image.new("RGB", (1, 1)).save(pixel, "PNG")
    sign(signing, pixel.getvalue(), "check.png", (), ())
