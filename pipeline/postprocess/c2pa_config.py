"""The team's C2PA credentials from ``provenance: {sign: ...}`` and the environment.

A mistake here is the user's (a missing file, a key that does not match its certificate,
the library not installed) and is reported as one, exit 2, before a build writes
anything. The key is read into memory and never echoed: messages name the file or the
variable it came from, never its text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pipeline.errors import Location, SpecError, UsageError
from pipeline.postprocess.c2pa_read import available
from pipeline.postprocess.c2pa_sign import Signing, SigningError, check_signing
from pipeline.spec.paths import inside

MAX_PEM_BYTES: Final = 256 * 1024
CERT_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"


def load_signing(
    root: Path,
    cert: str,
    key: str | None,
    alg: str,
    tsa_url: str | None,
    env_key: tuple[str, str | None],
    where: Location,
) -> Signing:
    """The credentials named in assetpipe.yaml (at ``where``): ``cert`` and ``key`` files
    inside the project (relative) or anywhere the user names (absolute); ``env_key`` is
    the variable that may hold the key's PEM text, and its value."""
    if not available():
        raise UsageError(
            "provenance.sign needs the C2PA library: pip install 'assetpipe[c2pa]' "
            "(or remove provenance.sign from assetpipe.yaml)"
        )
    certs = _read_pem(root, cert, "cert", where)
    if CERT_BEGIN not in certs:
        raise SpecError(f"provenance.sign.cert: {cert} holds no PEM certificate", where)
    certs = b"".join(
        CERT_BEGIN + block.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
        for block in certs.split(CERT_BEGIN)[1:]
    )
    variable, text = env_key
    if text:
        pem, source = text.encode(), variable
    elif key is not None:
        pem, source = _read_pem(root, key, "key", where), f"provenance.sign.key ({key})"
    else:
        raise SpecError(
            "provenance.sign has no key",
            where,
            f"name a PEM file in provenance.sign.key, or set {variable} to the key's PEM text",
        )
    if b"PRIVATE KEY-----" not in pem:
        raise UsageError(f"{source} holds no PEM private key")
    signing = Signing(certs, pem, alg, tsa_url or None)
    try:
        check_signing(signing)
    except SigningError as exc:
        raise UsageError(
            f"provenance.sign: the key from {source} cannot sign with {cert}: {exc}"
        ) from None
    return signing


def _read_pem(root: Path, name: str, field: str, where: Location) -> bytes:
    """A credential file: relative paths stay inside the project (a pull request must not
    name a file of the machine that builds it); an absolute path is the user's choice."""
    path = Path(name)
    if not path.is_absolute():
        path = root / path
        if not inside(path, root):
            raise SpecError(
                f"provenance.sign.{field}: {name} leads outside the project folder",
                where,
                "name a file inside the project, or an absolute path",
            )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise SpecError(
            f"provenance.sign.{field}: cannot read {name} ({exc.strerror or exc})", where
        ) from None
    if len(data) > MAX_PEM_BYTES:
        raise SpecError(f"provenance.sign.{field}: {name} is not a PEM file (too large)", where)
    return data
