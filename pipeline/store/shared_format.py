"""What the shared cache stores, apart from how it talks to an object store: its URL, its
object names, its record format, and how a failed request is told to the user.

Kept free of ``obstore`` so that settings can check a ``remote_cache`` URL, and tests can
check records, on an install without the ``s3`` extra. The URLs it takes are
:data:`URL_FORMS`; the layout, under the user's prefix (or folder) and a format version
(so a later layout can live beside this one)::

    <prefix>/assetpipe-v1/records/<key>.json   {"format": 1, "key", "blob", "original", "meta"}
    <prefix>/assetpipe-v1/blobs/<sha256>       the bytes
    <prefix>/assetpipe-v1/facts/<sha256>.json  what inspecting them found, sealed (optional)

A record is plain JSON: two blob names and the metadata the runner reads back (usage,
cost, request id), never a credential or a host name, since a shared bucket may be
readable by every laptop of a team. Read back, it is untrusted input: size-capped before
it is parsed, built through :func:`~pipeline.store.base.parse_record`, and it must name
the key it is stored under and keep the request that key is computed from (a record
copied or planted under another request's key is refused).
"""

from __future__ import annotations

import json
import posixpath
import re
import urllib.parse
from typing import Final, NamedTuple

from pipeline.errors import UsageError, printable
from pipeline.store.base import MAX_META_CHARS, CacheRecord, encode_meta, parse_record

LAYOUT: Final = "assetpipe-v1"
RECORD_FORMAT: Final = 1
MAX_BLOB_BYTES: Final = 64 * 1024 * 1024
"""An image larger than this is neither pushed nor downloaded (a 4k PNG is ~30 MiB)."""
MAX_RECORD_BYTES: Final = MAX_META_CHARS + 64 * 1024
"""A record is a few hundred bytes; the cap is what the local store allows, plus framing."""
_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,62}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~=+-]+")
_STATUS = re.compile(r"status code: (\d{3})( [A-Za-z ]+)?")
_CODE = re.compile(r"<Code>(\w{1,64})</Code>")
_RETRIED = re.compile(
    r"Error performing ([A-Z]{3,7}) \S+ in [^,]*, after (\d+) retries[^-]*- (.{1,120})"
)
"""obstore's first line for a request that failed without an answer, after its retries."""
_CAUSE = re.compile(r'message: "([^"\n]{1,80})"|hyper::Error\(\s*(\w{1,40})')
"""The operating system's or the HTTP client's word for it, in obstore's debug text."""
_CAUSES = {"IncompleteMessage": "the connection closed before an answer"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BAD_CREDENTIALS = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "InvalidToken",
        "AuthenticationFailed",
    }
)
"""Error codes (S3's, and Azure's ``AuthenticationFailed``) that say the credentials are
wrong, not that an action is forbidden."""
URL_FORMS: Final = {
    "s3": "s3://bucket/prefix",
    "gs": "gs://bucket/prefix",
    "az": "az://container/prefix",
    "file": "file:///absolute/folder",
}
"""The shared cache URLs assetpipe takes, by scheme (which store serves each, and what it
reads from the environment, is chosen in ``pipeline.api.stores``)."""


def is_key(key: object) -> bool:
    """Whether ``key`` can name a shared record (cache keys are sha256 digests)."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def record_path(key: str) -> str:
    """A record's object name below the layout's root."""
    return f"records/{key}.json"


def blob_path(sha: str) -> str:
    """A blob's object name below the layout's root."""
    return f"blobs/{sha}"


def facts_path(sha: str) -> str:
    """The object name of what inspecting the blob ``sha`` found, sealed with the team's
    secret (:mod:`pipeline.store.sealed_facts`), below the layout's root."""
    return f"facts/{sha}.json"


class SharedURL(NamedTuple):
    """A checked shared cache URL."""

    scheme: str
    """One of :data:`URL_FORMS`."""
    container: str
    """The bucket or container; for ``file://``, the absolute folder."""
    prefix: str
    """Segments below the bucket or container joined by ``/`` (always empty for a folder)."""

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{urllib.parse.quote(self.container)}"
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"{self.scheme}://{self.container}{tail}"


def parse_url(url: str) -> SharedURL:
    """The parts of a shared cache URL (:data:`URL_FORMS`); UsageError for anything else.
    The URL never carries credentials: they come from the environment."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in URL_FORMS or not sep:
        forms = ", ".join(URL_FORMS.values())
        raise UsageError(f"the shared cache must be one of {forms}; not {printable(url)!r}")
    if scheme == "file":
        return _parse_folder(url, rest)
    bucket, _, path = rest.partition("/")
    if "@" in bucket:
        raise UsageError(
            "the shared cache URL must not hold credentials or an account; they come from "
            "the environment (docs/caching.md says which variables)"
        )
    if not _BUCKET.fullmatch(bucket):
        kind = "container" if scheme == "az" else "bucket"
        raise UsageError(f"{printable(bucket)!r} in {printable(url)!r} is not a {kind} name")
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        if segment in {".", ".."} or not _SEGMENT.fullmatch(segment):
            raise UsageError(
                f"{printable(segment)!r} in {printable(url)!r} cannot be part of a prefix "
                "(letters, digits and . _ ~ = + - only)"
            )
    return SharedURL(scheme, bucket, "/".join(segments))


def _parse_folder(url: str, rest: str) -> SharedURL:
    """``file:///absolute/folder``: a folder of this machine (a network drive, a mount),
    named in full; percent-escapes are decoded, ``.`` and ``..`` are refused."""
    host, slash, path = rest.partition("/")
    if host not in {"", "localhost"} or not slash:
        raise UsageError(
            f"{printable(url)!r} does not name a folder of this machine: write "
            "file:///absolute/folder (three slashes)"
        )
    folder = urllib.parse.unquote("/" + path)
    segments = [s for s in folder.split("/") if s]
    if _CONTROL.search(folder) or any(s in {".", ".."} for s in segments):
        raise UsageError(
            f"{printable(url)!r} cannot name a shared folder (no . or .. segments, "
            "no control characters)"
        )
    if not segments:
        raise UsageError(f"{printable(url)!r} is the root folder; name a folder under it")
    return SharedURL("file", posixpath.join("/", *segments), "")


def encode_record(key: str, record: CacheRecord) -> bytes:
    """The JSON object stored for ``record`` under ``key`` (ValueError for metadata that
    :func:`decode_record` would refuse)."""
    encode_meta(key, record.meta or {})
    return json.dumps(
        {
            "format": RECORD_FORMAT,
            "key": key,
            "blob": record.blob,
            "original": record.original,
            "meta": dict(record.meta or {}),
        },
        ensure_ascii=False,
        sort_keys=True,
    ).encode("utf-8")


def decode_record(key: str, data: bytes) -> CacheRecord | None:
    """The record in a stored object, or None when it is not one this format writes, or
    was stored for another key."""
    if len(data) > MAX_RECORD_BYTES:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
        if not isinstance(obj, dict) or obj.get("format") != RECORD_FORMAT:
            return None
        if obj.get("key") != key or not isinstance(obj.get("meta"), dict):
            return None
        meta = json.dumps(obj["meta"], ensure_ascii=False)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return parse_record(key, obj.get("blob"), obj.get("original"), meta)


def http_failure(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status of a failed request, read from the client's message, and the S3
    error code (else the status phrase); (None, "") when no response came."""
    text = str(exc)
    status, code = _STATUS.search(text), _CODE.search(text)
    if status is None:
        return None, ""
    return int(status.group(1)), code.group(1) if code else (status.group(2) or "").strip()


def reason(exc: BaseException) -> str:
    """A short, printable account of a failed request: the HTTP status and S3 error code
    when there were some (never the rest of the server's body, which is untrusted text);
    for a request that got no answer after the client's retries, the method, the retries
    and the cause (not the object's URL); else the first line of the client's message."""
    status, code = http_failure(exc)
    if status is not None:
        return f"HTTP {status} {code}".rstrip()
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0]
    retried = _RETRIED.search(first)
    if retried is None:
        return printable(first[:240])
    # "GET failed after 2 retries: HTTP error: error sending request (Connection refused)":
    # the URL (long, and the store's own is said beside it) left out, the cause kept.
    verb, tries, said = retried.groups()
    found = f"{verb} failed after {tries} retries: {said.strip()}"
    cause = _CAUSE.search(text)
    if cause is not None:
        found += f" ({cause[1] or _CAUSES.get(cause[2], cause[2])})"
    return printable(found)


def refused(exc: BaseException) -> bool:
    """Whether the server refused the request (HTTP 401 or 403)."""
    return http_failure(exc)[0] in {401, 403}


def server_trouble(exc: BaseException) -> bool:
    """Whether the server answered with trouble of its own (a 5xx) or asked to be asked
    less (408, 429): something about one request, not about reaching the store or being
    allowed in, which a failed probe or a 401/403 says."""
    status = http_failure(exc)[0]
    return status is not None and (status >= 500 or status in {408, 429})


def bad_credentials(exc: BaseException) -> bool:
    """Whether a refusal says the credentials are wrong, rather than not allowed."""
    return http_failure(exc)[1] in BAD_CREDENTIALS
