"""What the shared cache stores, apart from how it talks to a bucket: its URL, its object
names, its record format, the ``AWS_*`` variables that configure it, and how a failed
request is told to the user.

Kept free of ``obstore`` so that settings can check a ``remote_cache`` URL, and tests can
check records, on an install without the ``s3`` extra. The layout, under the user's
prefix and a format version (so a later layout can live beside this one)::

    <prefix>/assetpipe-v1/records/<key>.json   {"format": 1, "key", "blob", "original", "meta"}
    <prefix>/assetpipe-v1/blobs/<sha256>       the bytes

A record is plain JSON: two blob names and the metadata the runner reads back (usage,
cost, request id), never a credential or a host name, since a shared bucket may be
readable by every laptop of a team. Read back, it is untrusted input: size-capped before
it is parsed, built through :func:`~pipeline.store.base.parse_record`, and it must name
the key it is stored under and keep the request that key is computed from (a record
copied or planted under another request's key is refused).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from pipeline.errors import UsageError, printable
from pipeline.store.base import MAX_META_CHARS, CacheRecord, encode_meta, parse_record

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

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
BAD_CREDENTIALS = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken"}
)
"""S3 error codes that say the credentials are wrong, not that an action is forbidden."""


def is_key(key: object) -> bool:
    """Whether ``key`` can name a shared record (cache keys are sha256 digests)."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def record_path(key: str) -> str:
    """A record's object name below the layout's root."""
    return f"records/{key}.json"


def blob_path(sha: str) -> str:
    """A blob's object name below the layout's root."""
    return f"blobs/{sha}"


def parse_url(url: str) -> tuple[str, str]:
    """Bucket and prefix of ``s3://bucket/prefix`` (UsageError for anything else). The
    URL never carries credentials: they come from the ``AWS_*`` variables."""
    scheme, sep, rest = url.partition("://")
    bucket, _, path = rest.partition("/")
    if "@" in bucket:
        raise UsageError(
            "the shared cache URL must not hold credentials; "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
        )
    if scheme != "s3" or not sep:
        raise UsageError(
            f"the shared cache must be an s3://bucket/prefix URL, not {printable(url)!r}"
        )
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(f"{printable(bucket)!r} in {printable(url)!r} is not a bucket name")
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        if segment in {".", ".."} or not _SEGMENT.fullmatch(segment):
            raise UsageError(
                f"{printable(segment)!r} in {printable(url)!r} cannot be part of a prefix "
                "(letters, digits and . _ ~ = + - only)"
            )
    return bucket, "/".join(segments)


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


def aws_settings(environ: Mapping[str, str]) -> tuple[S3Config, ClientConfig, RetryConfig]:
    """obstore's configuration from the standard ``AWS_*`` variables in ``environ``:
    credentials, region, and ``AWS_ENDPOINT_URL`` for MinIO, SeaweedFS or R2 (a plain
    ``http://`` endpoint is allowed as given). Timeouts are short, so that a remote that
    does not answer costs a build seconds, not minutes, and retries are few. Other ways
    to credentials (web identity, container roles) obstore reads from the process
    environment itself."""
    config: S3Config = {}
    client: ClientConfig = {
        "connect_timeout": timedelta(seconds=5),
        "read_timeout": timedelta(seconds=20),
        "timeout": timedelta(seconds=120),
    }
    for name, field in (
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
    ):
        if environ.get(name):
            config[field] = environ[name]  # type: ignore[literal-required]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
        client["allow_http"] = endpoint.lower().startswith("http://")
    return config, client, {"max_retries": 2, "retry_timeout": timedelta(seconds=15)}


CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
"""The variables that give obstore credentials (static keys, web identity, a container
role); without any of them it can only try the instance's metadata service."""


def has_credentials(environ: Mapping[str, str]) -> bool:
    """Whether the environment names any source of AWS credentials."""
    return any(environ.get(name) or os.environ.get(name) for name in CREDENTIAL_SOURCES)


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
    when there were some (never the rest of the server's body, which is untrusted text),
    else the first line of the client's message."""
    status, code = http_failure(exc)
    if status is not None:
        return f"HTTP {status} {code}".rstrip()
    text = str(exc).strip()
    return printable(text.splitlines()[0][:240] if text else type(exc).__name__)


def refused(exc: BaseException) -> bool:
    """Whether the server refused the request (HTTP 401 or 403)."""
    return http_failure(exc)[0] in {401, 403}


def bad_credentials(exc: BaseException) -> bool:
    """Whether a refusal says the credentials are wrong, rather than not allowed."""
    return http_failure(exc)[1] in BAD_CREDENTIALS
