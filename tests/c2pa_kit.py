"""Real C2PA credentials for tests: a throwaway certificate chain and an API-like signer.

The chain is what c2pa-rs accepts for signing: a root CA, an intermediate CA, and an
ES256 end-entity certificate with ``digitalSignature`` and the extended key usages C2PA
lists (``emailProtection`` and ``documentSigning``), an authority and subject key id each,
valid from 2000 to 2099 so that no test depends on today's date.

:func:`api_signer` signs a PNG the way OpenAI's API does (an ``c2pa.created`` action with
the ``trainedAlgorithmicMedia`` digital source type); the fake API uses it through its
``c2pa_sign`` option. :func:`tampered` changes one byte of a PNG's pixels and keeps the
file a valid PNG (the manifest untouched), which a validating reader must reject.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOT_BEFORE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2099, 12, 31, tzinfo=dt.UTC)
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
AI_MADE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@dataclass(frozen=True)
class Chain:
    """A certificate chain: ``certs`` (end-entity, then intermediate; PEM), its ``key``
    (PKCS#8 PEM) and the ``root`` (PEM) a verifier may be told to trust."""

    certs: bytes
    key: bytes
    root: bytes
    organization: str


def _name(common: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING])
        builder = builder.add_extension(eku, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_chain(organization: str) -> Chain:
    """A fresh root -> intermediate -> ES256 signer chain for ``organization``."""
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name = _name(f"{organization} Root CA", organization)
    mid_name = _name(f"{organization} Intermediate CA", organization)
    root = _cert(root_name, root_name, root_key, root_key, ca=True, path_length=1)
    mid = _cert(mid_name, root_name, mid_key, root_key, ca=True, path_length=0)
    leaf = _cert(
        _name(f"{organization} Signer", organization), mid_name, leaf_key, mid_key, ca=False
    )

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    key = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Chain(pem(leaf) + pem(mid), key, pem(root), organization)


def api_signer(chain: Chain) -> Callable[[bytes], bytes]:
    """Signs a PNG as the Images API does: generator ``OpenAI API``, a ``c2pa.created``
    action of an AI digital source type. The fake's placeholder store is removed first."""

    def sign(png: bytes) -> bytes:
        manifest = {
            "claim_generator_info": [{"name": "OpenAI API", "version": "1.0"}],
            "title": "image.png",
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI_MADE}]},
                }
            ],
        }
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo("es256", chain.certs, chain.key, None))
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        out = io.BytesIO()
        with signer, c2pa.Builder(manifest, context) as builder:
            builder.sign(signer, "image/png", io.BytesIO(without_chunk(png, b"caBX")), out)
        return out.getvalue()

    return sign


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), in order."""
    out, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        out.append((png[at + 4 : at + 8], png[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of these chunks (each with its CRC)."""
    body = b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in parts
    )
    return b"\x89PNG\r\n\x1a\n" + body


def without_chunk(png: bytes, kind: bytes) -> bytes:
    """The PNG without its chunks of ``kind``."""
    return build([c for c in chunks(png) if c[0] != kind])


def tampered(png: bytes) -> bytes:
    """The PNG with one byte of its first row's pixels flipped: still a valid PNG (the
    compressed data and every CRC made anew), the manifest chunk untouched."""
    parts = chunks(png)
    pixels = bytearray(zlib.decompress(b"".join(d for k, d in parts if k == b"IDAT")))
    pixels[1] ^= 0xFF  # byte 0 of a row is its filter type; byte 1 is the first pixel's
    first = next(i for i, (k, _) in enumerate(parts) if k == b"IDAT")
    rest = [p for p in parts[first:] if p[0] != b"IDAT"]
    return build([*parts[:first], (b"IDAT", zlib.compress(bytes(pixels))), *rest])
