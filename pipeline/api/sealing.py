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
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipeline.fsutil import read_open

log = logging.getLogger("assetpipe.sealing")

KEY_FILE = "state-key"
_KEY_BYTES = 32
_MAGIC = b"assetpipe-sealed-v1 "
_MAC_HEX = 64
_SEALERS: dict[Path | None, Sealer] = {}


def state_dir(environ: Mapping[str, str]) -> Path | None:
    """Where per-user state lives: ``ASSETPIPE_STATE_DIR``, else the XDG state folder;
    None when there is no home folder to put it in."""
    if chosen := environ.get("ASSETPIPE_STATE_DIR"):
        return Path(chosen)
    if xdg := environ.get("XDG_STATE_HOME"):
        return Path(xdg) / "assetpipe"
    try:
        home = Path(environ.get("HOME") or Path.home())
    except RuntimeError:
        return None
    return home / ".local" / "state" / "assetpipe"


class KeyRefused(OSError):
    """A key file that is there but must not be used (a link, another user's, readable
    by others): said as a warning, since it is a mistake to fix, not a missing home."""


def user_sealer() -> Sealer:
    """The sealer of this process's user (one per state folder: the key is read once)."""
    found = state_dir(os.environ)
    folder = found.absolute() if found is not None else None
    sealer = _SEALERS.get(folder)
    if sealer is None:
        sealer = _SEALERS.setdefault(folder, Sealer(folder))
    return sealer


class Sealer:
    """Seals and opens files with the per-user key (loaded, or made, on first use)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self._key: bytes | None = None
        self._tried = False

    def _secret(self) -> bytes | None:
        if not self._tried:
            self._tried = True
            if self.folder is None:
                log.info("no home folder: stored plans and stamps are not used")
                return None
            path = self.folder / KEY_FILE
            try:
                self._key = _load_or_make(path)
            except KeyRefused as exc:
                log.warning(
                    "not using the per-user key %s (%s): stored plans and stamps are ignored "
                    "until it is fixed (chmod 600, owned by you) or removed",
                    path,
                    exc.strerror,
                )
            except OSError as exc:
                log.info(
                    "no per-user key in %s (%s): stored plans and stamps are not used",
                    self.folder,
                    exc.strerror or exc,
                )
        return self._key

    @property
    def usable(self) -> bool:
        """Whether there is a key (without one, nothing sealed can be told from planted,
        and that was said once already)."""
        return self._secret() is not None

    def seal(self, purpose: str, body: bytes) -> bytes | None:
        """``body`` with a MAC line in front; None when there is no key (store nothing)."""
        key = self._secret()
        if key is None:
            return None
        return _MAGIC + _mac(key, purpose, body).encode() + b"\n" + body

    def open(self, purpose: str, sealed: bytes) -> bytes | None:
        """The body of ``sealed`` when its MAC is this user's for ``purpose``; else None."""
        key = self._secret()
        newline = sealed.find(b"\n", 0, len(_MAGIC) + _MAC_HEX + 1)
        if key is None or newline < 0 or not sealed.startswith(_MAGIC):
            return None
        mac = sealed[len(_MAGIC) : newline]
        # The body is hashed in place and copied once, when it is known to be this user's:
        # a stored plan of 100,000 jobs is ~75 MB.
        body = memoryview(sealed)[newline + 1 :]
        if len(mac) != _MAC_HEX or not hmac.compare_digest(mac, _mac(key, purpose, body).encode()):
            return None
        return bytes(body)


def _mac(key: bytes, purpose: str, body: bytes | memoryview) -> str:
    """The MAC of ``body`` for one purpose: a stamp is never accepted as a plan."""
    mac = hmac.new(key, purpose.encode() + b"\0", hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def _load_or_make(path: Path) -> bytes:
    """The key in ``path``, made first when there is none. It is written whole to a
    temporary file and linked into place, so a process racing to make it never reads a
    half-written key, and both agree on the one that landed. A key that is a link, not a
    regular file, not owned by this user, or readable by others is refused: anyone who can
    read it can forge what it seals."""
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-key.", dir=path.parent)  # mode 0600
    try:
        os.write(fd, secrets.token_hex(_KEY_BYTES).encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
    return _load(path)


def _load(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyRefused(errno.ELOOP, "it is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyRefused(errno.EINVAL, "it is not a regular file")
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise KeyRefused(
                errno.EPERM, "it must belong to this user and be readable by no one else"
            )
        text = read_open(fd, _KEY_BYTES * 2, str(path))
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise KeyRefused(errno.EINVAL, "it is not a key assetpipe made")
    return key
