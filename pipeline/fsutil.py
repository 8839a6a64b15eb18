"""Atomic, contained file writes.

Every file assetpipe writes goes to a temporary file in the same folder and is renamed
over the target, so a crash leaves either the old file or the new one, never half of
one. Writes under a root also refuse to leave it: no ``..``, no absolute paths, and no
symbolic link on the way that could send bytes somewhere else. The folders assetpipe
owns (the cache folder, the output folder) are checked before a build writes anything:
a link there is refused, and a folder that cannot be written stops the build before the
first paid call rather than after it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from pipeline.errors import EXIT_USAGE, PipelineError, ProjectLocked, UsageError


class UnsafePathError(PipelineError):
    """A write that would leave its root folder."""


class LinkRefused(UnsafePathError):
    """A symbolic link where assetpipe keeps its own files (exit 2: the user removes it)."""

    exit_code = EXIT_USAGE


def refuse_link(path: Path, what: str) -> os.stat_result | None:
    """``lstat`` of ``path``, None when it does not exist; a symbolic link is refused.

    A link inside ``.assetpipe/`` or in place of the output folder would send writes, and
    the deletions of ``cache gc`` or ``--prune``, to wherever it points.
    """
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(info.st_mode):
        raise LinkRefused(
            f"refusing to use the symbolic link {path} ({what}); remove it so assetpipe "
            "keeps its files in a real folder"
        )
    return info


def check_folder(path: Path, what: str, flag: str) -> None:
    """Raise a :class:`UsageError` unless ``path`` is, or can be made, a real folder.

    Writes nothing: a build checks its folders before it takes a lock or creates any.
    """
    info = refuse_link(path, f"the {what}")
    if info is not None:
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(
                f"the {what} {path} is a file, not a folder; remove it or choose another "
                f"folder with {flag}"
            )
        return
    for parent in path.parents:
        try:
            parent_info = parent.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(
                f"cannot create the {what} {path}: {parent} is unreadable "
                f"({exc.strerror}); choose another folder with {flag}"
            ) from None
        if not stat.S_ISDIR(parent_info.st_mode):
            raise UsageError(
                f"cannot create the {what} {path}: {parent} is a file, not a folder; "
                f"choose another folder with {flag}"
            )
        return


def make_folders(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; returns those created, outermost first."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_folders(created: list[Path]) -> None:
    """Remove folders :func:`make_folders` created, innermost first, while still empty."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def probe_writable(folder: Path, what: str, flag: str) -> None:
    """Create, sync and remove a small file in ``folder``, or raise a :class:`UsageError`.

    Run before a build's first paid call: a full disk or a read-only folder found after
    the API answered would lose an image already paid for.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".assetpipe-probe.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(_unwritable(folder, what, flag, exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"assetpipe\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise UsageError(_unwritable(folder, what, flag, exc)) from None
    finally:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()


def _unwritable(folder: Path, what: str, flag: str, exc: OSError) -> str:
    reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
    return (
        f"cannot write to the {what} {folder} ({reason}); make it writable or free some "
        f"space, or choose another folder with {flag}"
    )


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The folder is made only when missing, and the bytes go out by plain ``write`` calls
    (no buffered file object): a build writes a few files per image, and every system
    call saved is one less on each of them."""
    try:
        fd, tmp = _temporary_beside(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        # os.replace: Path.replace builds and returns a Path for each file written.
        os.replace(tmp, path)  # noqa: PTH105
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # noqa: PTH108 - as above
        raise


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMPORARIES = itertools.count()
"""Numbers the temporary files this process creates (with its pid, a name no other
process uses; a name left by a crash is skipped)."""


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new, empty file in ``path``'s folder, open to write, and its path: created by
    this call alone (``O_EXCL``, never through a link), with the mode any new file gets
    (0666 less the umask), as a delivered asset should have. Cheaper than
    ``tempfile.mkstemp``, which draws a random name and creates the file 0600."""
    stem = f"{os.fspath(path.parent)}/.{path.name}.{os.getpid()}"
    for _ in range(100):
        tmp = f"{stem}.{next(_TEMPORARIES)}.tmp"
        try:
            return os.open(tmp, _NEW_FILE, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name for a temporary file", str(path.parent))


def contained(root: Path, relative: str, real_dirs: set[str] | None = None) -> Path:
    """``root/relative`` after checking that it cannot escape ``root``.

    Rejects absolute paths, ``..`` parts and any existing symbolic link between the root
    and the target (a link could point anywhere on disk). ``real_dirs`` remembers the
    folders (relative to ``root``) already found to be real folders, so checking 10,000
    files in a few folders costs one ``lstat`` per file, not one per path part.
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UnsafePathError(f"refusing to write outside {root}: {relative!r}")
    current = root
    for depth, part in enumerate(rel.parts, start=1):
        current = current / part
        folder = "/".join(rel.parts[:depth]) if depth < len(rel.parts) else None
        if real_dirs is not None and folder in real_dirs:
            continue
        try:
            mode = current.lstat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISLNK(mode):
            raise UnsafePathError(
                f"refusing to write through the symbolic link {current}; "
                "remove it so assetpipe writes only inside its output folder"
            )
        if real_dirs is not None and folder is not None and stat.S_ISDIR(mode):
            real_dirs.add(folder)
    return current


def write_contained(
    root: Path,
    relative: str,
    data: bytes,
    *,
    fsync: bool = True,
    real_dirs: set[str] | None = None,
) -> Path:
    """Atomically write ``data`` to ``root/relative``; returns the path written
    (``real_dirs``: as for :func:`contained`)."""
    if root.is_symlink():
        raise UnsafePathError(f"the output folder {root} is a symbolic link")
    target = contained(root, relative, real_dirs)
    write_atomic(target, data, fsync=fsync)
    return target


@contextlib.contextmanager
def held_lock(path: Path, what: str, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, which records the holder's pid.

    Opened without following a link (a link would truncate its target) and removed on
    release, so nothing is left behind. Removing a lock file is safe because a lock counts
    only while the file held is still the one at ``path``: whoever locked a file just
    removed tries again.
    """
    with _holding(path, _acquire(path, what, busy, time.monotonic())):
        yield


@contextlib.contextmanager
def waited_lock(path: Path, what: str, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, waiting up to :data:`LOCK_WAIT_S` for it.

    For short changes of one file that several processes make (a pick from two terminals,
    or from the review page and the command line at once): the later one waits its turn
    rather than failing, as a second build does at :func:`held_lock`. The file is handled
    as there: opened without following a link, the holder's pid written in it, removed on
    release, and held only while it is still the file at ``path``. A holder that never
    lets go (a stopped process) ends the wait with ``busy(pid)`` instead of a hang.
    """
    with _holding(path, _acquire(path, what, busy, time.monotonic() + LOCK_WAIT_S)):
        yield


def _acquire(path: Path, what: str, busy: Callable[[str], str], deadline: float) -> int:
    """The lock file at ``path``, open and locked by us once it is still the file there
    (a holder may remove it while we open or wait: then the new one is locked);
    ``ProjectLocked`` naming the holder's pid when ``deadline`` passes first."""
    for _ in range(100):
        fd = _open_lock(path, what)
        try:
            _wait_flock(fd, deadline)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise ProjectLocked(busy(holder or "unknown")) from None
        if _still_at(path, fd):
            return fd
        os.close(fd)  # the holder removed it meanwhile: lock the new one
    raise ProjectLocked(busy("unknown"))  # pragma: no cover - a hundred releases in a row


@contextlib.contextmanager
def _holding(path: Path, fd: int) -> Iterator[None]:
    """While a lock on ``path`` (open as ``fd``) is held: its file names the holder's pid,
    and on release it is removed and closed."""
    try:
        with contextlib.suppress(OSError):  # the pid only informs whoever waits
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


LOCK_WAIT_S = 60.0
"""How long :func:`waited_lock` waits: a change of a lock file takes milliseconds, so a
minute means its holder is stuck, not busy."""


def _wait_flock(fd: int, deadline: float) -> None:
    """``flock`` ``fd`` exclusively, polling (a blocking ``flock`` cannot time out) with
    waits growing from 1 to 50 ms; BlockingIOError once ``deadline`` has passed."""
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        else:
            return


def _still_at(path: Path, fd: int) -> bool:
    """Whether the file open as ``fd`` is still the one at ``path`` (not removed, not
    replaced): only then does a lock on it exclude the others."""
    held = os.fstat(fd)
    try:
        now = path.lstat()
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _open_lock(path: Path, what: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise LinkRefused(
                f"refusing to use the symbolic link {path} ({what}); remove it"
            ) from None
        raise UsageError(
            f"cannot create {what} {path} ({exc.strerror}); make its folder writable"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{what} {path} is not a regular file; remove it")
    return fd


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path``, read without following a link; None when
    it does not exist.

    For files assetpipe keeps but anyone may have planted (``.assetpipe/``): a link, a
    FIFO or device (a read that never ends), or a file over ``limit`` bytes raises
    ``OSError`` instead of being read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return read_open(fd, limit, str(path))
    finally:
        os.close(fd)


READ_CHUNK = 1 << 20
"""How much more is read at a time from a file that grew after its size was taken."""


def regular_size(fd: int, limit: int, name: str) -> int:
    """The size of the file open as ``fd``, before a byte of it is read: ``OSError``
    (``EINVAL``) when it is not a regular file, (``EFBIG``) when it is over ``limit``
    bytes, so a sparse file of gigabytes costs nothing to refuse."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", name)
    if info.st_size > limit:
        raise OSError(errno.EFBIG, f"more than {limit:,} bytes", name)
    return info.st_size


def read_open(fd: int, limit: int, name: str) -> bytes:
    """The bytes of the file open as ``fd`` (named ``name`` in errors), checked as
    :func:`read_regular` checks a path's: not a regular file, or over ``limit`` bytes,
    raises ``OSError``. The caller keeps ``fd`` open (to link that very file, say)."""
    # Reads are sized by what the file holds, not by the cap: a read of n bytes sets n
    # bytes aside first. One byte past the size shows a file that grew while it was read.
    want = min(limit, regular_size(fd, limit, name)) + 1
    data = b""
    while chunk := os.read(fd, want - len(data)):
        data += chunk
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"more than {limit:,} bytes", name)
        if len(data) == want:  # it grew: read on, a chunk at a time, up to the cap
            want = min(limit + 1, want + READ_CHUNK)
    return data
