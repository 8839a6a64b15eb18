"""A per-user key that tells files this user's assetpipe wrote from planted ones.

Stored plans (``.assetpipe/plans/``) and the last build's stamp
(``.assetpipe/last-build.json``) are shortcuts: while they are trusted, a build skips
planning, or all of its checks. ``.assetpipe/`` is untrusted (a CI cache restored from
another branch, a shared drive, an archive), so a shortcut found there is taken only
when it carries a MAC made with a key that never lives in the project: 32 random bytes
in the user's state folder (``ASSETPIPE_STATE_DIR``, else ``$XDG_STATE_HOME/assetpipe``,
else ``~/.local/state/assetpipe``), readable by that user alone. Whoever can write the
project cannot forge a MAC; a fresh CI runner has a new key and simply plans afresh.

Without a usable key (no home folder, a read-only one, a key file others can read)
nothing is sealed and nothing is opened: every command plans afresh and checks
everything, which is slower, never wrong.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from pipeline.fsutil import read_open

log = logging.getLogger("assetpipe.sealing")

KEY_FILE = "state-key"
_KEY_BYTES = 32
_MAGIC = b"assetpipe-sealed-v1 "
_MAC_HEX = 64
_SEALERS: dict[Path, Sealer] = {}


def state_dir(environ: Mapping[str, str]) -> Path:
    """Where per-user state lives: ``ASSETPIPE_STATE_DIR``, else the XDG state folder."""
    if chosen := environ.get("ASSETPIPE_STATE_DIR"):
        return Path(chosen)
    if xdg := environ.get("XDG_STATE_HOME"):
        return Path(xdg) / "assetpipe"
    return Path(environ.get("HOME") or Path.home()) / ".local" / "state" / "assetpipe"


def user_sealer() -> Sealer:
    """The sealer of this process's user (one per state folder: the key is read once)."""
    folder = state_dir(os.environ).absolute()
    sealer = _SEALERS.get(folder)
    if sealer is None:
        sealer = _SEALERS.setdefault(folder, Sealer(folder))
    return sealer


class Sealer:
    """Seals and opens files with the per-user key (loaded, or made, on first use)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._key: bytes | None = None
        self._tried = False

    def _secret(self) -> bytes | None:
        if not self._tried:
            self._tried = True
            try:
                self._key = _load_or_make(self.folder / KEY_FILE)
            except OSError as exc:
                log.info(
                    "no per-user key in %s (%s): stored plans and stamps are not used",
                    self.folder,
                    exc.strerror or exc,
                )
        return self._key

    def seal(self, purpose: str, body: bytes) -> bytes | None:
        """``body`` with a MAC line in front; None when there is no key (store nothing)."""
        key = self._secret()
        if key is None:
            return None
        return _MAGIC + _mac(key, purpose, body).encode() + b"\n" + body

    def open(self, purpose: str, sealed: bytes) -> bytes | None:
        """The body of ``sealed`` when its MAC is this user's for ``purpose``; else None."""
        key = self._secret()
        head, newline, body = sealed.partition(b"\n")
        if key is None or not newline or not head.startswith(_MAGIC):
            return None
        mac = head[len(_MAGIC) :]
        if len(mac) != _MAC_HEX or not hmac.compare_digest(mac, _mac(key, purpose, body).encode()):
            return None
        return body


def _mac(key: bytes, purpose: str, body: bytes) -> str:
    """The MAC of ``body`` for one purpose: a stamp is never accepted as a plan."""
    return hmac.new(key, purpose.encode() + b"\0" + body, hashlib.sha256).hexdigest()


def _load_or_make(path: Path) -> bytes:
    """The key in ``path``, made first when there is none (two processes racing to make
    it agree on the one that landed). A key that is a link, not a regular file, not
    owned by this user, or readable by others is refused: anyone who can read it can
    forge what it seals."""
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _load(path)
    try:
        os.write(fd, secrets.token_hex(_KEY_BYTES).encode())
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(fd)
    return _load(path)


def _load(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise OSError(
                errno.EPERM, "the key must belong to this user and be readable by no one else"
            )
        if not stat.S_ISREG(info.st_mode):  # read_open says so too; before reading
            raise OSError(errno.EINVAL, "not a regular file")
        text = read_open(fd, _KEY_BYTES * 2, str(path))
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise OSError(errno.EINVAL, "not a key assetpipe made")
    return key
