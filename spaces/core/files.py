"""Every file hwnas writes goes through :func:`atomic_write` (or :func:`atomic_append`
for the one append-only log, a search run's ``cache.jsonl``).

Why: a model, a predictor or a table that is half written after a kill, a full disk
or a bad path is worse than none -- it replaces the good file the user had. So a
file is written to a temporary file in the target's own folder, flushed and
fsynced, then renamed over the target (atomic on POSIX). A target that exists but
is not a regular file (a device such as /dev/full, a folder, a FIFO) is refused
before anything is written, because ``os.replace`` would silently swap it for a
regular file. On any failure the previous file is intact and no temporary file
is left.

:func:`check_writable` is the cheap check callers run *before* expensive work (a
35-second fit, minutes of training), so a bad ``-o`` fails first, and
:func:`os_error_sentence` turns the OS's failure classes (full disk, read-only
file system, permission, missing folder) into the one sentence the CLI prints.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from spaces.core.errors import HwnasError

log = logging.getLogger(__name__)

# No file of any size fits on a disk with less free space than one file-system block:
# the only refusal made without knowing what will be written.
MIN_FREE_BYTES = 4096


def room_needed(size_bytes: int) -> int:
    """Free space a file of ``size_bytes`` needs: itself, rounded up to 4 KiB blocks, plus
    a margin that grows with it (5%, at least one block) for the file system's own
    records; an atomic write keeps the old file until the new one is complete."""
    blocks = -(-int(size_bytes) // 4096) * 4096
    return blocks + max(4096, int(size_bytes) // 20)

# errno -> what the user is told (the OS's own words are added in brackets).
_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file is too large for its file system",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "input/output error on the disk",
}


class OutputError(HwnasError, OSError):
    """A file cannot be written where asked (bad path, no space, read-only, not a file)."""


def reason(error: OSError) -> str:
    """The OS's own short reason (e.g. "No space left on device"), without errno or path."""
    return (error.strerror or str(error) or type(error).__name__).rstrip(".")


def os_error_sentence(error: OSError) -> str | None:
    """One sentence for an OS failure a user can fix (full disk, read-only or missing
    folder, permission), naming the file; None for anything else (a bug keeps its
    traceback)."""
    what = _OS_REASONS.get(error.errno or -1)
    if what is None:
        return None
    path = error.filename if error.filename is not None else error.filename2
    where = f"cannot use {os.fsdecode(path)}: " if path is not None else ""
    own = reason(error)
    return f"{where}{what}" + (f" ({own})" if own and own.lower() != what else "")


def _refuse_special(target: Path) -> None:
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(f"cannot write {target}: {reason(error)}") from None
    if stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {target}: it is a folder; give a file path")
    if not stat.S_ISREG(mode):
        raise OutputError(f"cannot write {target}: it exists and is not a regular file "
                          f"(a device, pipe or socket); give a file path")


def _existing_folder(target: Path, create_parent: bool) -> Path:
    """The folder that will hold ``target``: its parent, or (``create_parent``) the nearest
    existing ancestor the missing folders will be created in."""
    parent = target.parent if str(target.parent) else Path(".")
    if parent.is_dir():
        return parent
    if not create_parent or parent.exists():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"cannot write {target}: {parent} {what}")
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {target}: {ancestor} is not a folder")
    return ancestor


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes free to this user in ``folder``'s file system, None where unknowable."""
    try:
        return int(shutil.disk_usage(folder).free)
    except (OSError, ValueError):
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def _probe(target: Path, folder: Path) -> None:
    """Create and remove an empty file in ``folder``: the one test that also catches a
    read-only mount, a pseudo file system (/proc) or a root-squashed share, where the
    permission bits say yes."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".hwnas-probe.", suffix=".tmp")
    except OSError as error:
        raise OutputError(f"cannot write {target}: no file can be created in {folder} "
                          f"({reason(error)})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_room(target: Path, folder: Path, size_bytes: int | None) -> None:
    """Refuse a file that cannot fit: ``size_bytes`` (the file's size, or the caller's
    estimate of it) plus :func:`room_needed`'s margin; with no size, only a disk on which
    no file fits at all. The sentence states the size and the free space."""
    free = free_bytes(folder)
    if free is None:
        return
    if size_bytes is None:
        if free < MIN_FREE_BYTES:
            raise OutputError(f"cannot write {target}: the disk is full ({_size(free)} free, "
                              f"less than one {_size(MIN_FREE_BYTES)} block)")
        return
    if free < room_needed(size_bytes):
        raise OutputError(f"cannot write {target}: the file is {_size(size_bytes)} and only "
                          f"{_size(free)} free on its disk (it needs {_size(room_needed(size_bytes))} "
                          f"with the file system's margin)")


def check_writable(path: str | os.PathLike[str], *, create_parent: bool = False,
                   size_bytes: int | None = None) -> Path:
    """Refuse, before expensive work, a target that cannot be written: an existing
    non-regular file, a missing (unless ``create_parent``) or unwritable folder, or a disk
    on which the file cannot fit (``size_bytes``: its expected size; None when unknown,
    then only a full disk is refused and the write itself checks the real size)."""
    target = Path(path).expanduser()
    _refuse_special(target)
    folder = _existing_folder(target, create_parent)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: folder {folder} is not writable")
    _probe(target, folder)
    check_room(target, folder, size_bytes)
    return target


class _Recording:
    """A binary handle that remembers the OS error a write raised, so a writer that wraps
    it in its own exception (a serialiser's RuntimeError) still reports a full disk."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[IO[bytes]], None],
                 *, mode: int = 0o644, create_parent: bool = True) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function writing to a binary handle)
    to ``path`` atomically; raise :class:`OutputError` (target untouched) on failure."""
    target = Path(path).expanduser()
    _refuse_special(target)
    if create_parent:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot write {target}: {reason(error)}") from None
    if not callable(data):
        data = data.encode("utf-8") if isinstance(data, str) else data
        check_room(target, target.parent if str(target.parent) else Path("."), len(data))
    tmp = None
    recording: _Recording | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            recording = _Recording(handle)
            if callable(data):
                data(recording)  # type: ignore[arg-type]
            else:
                recording.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as error:
        raise OutputError(f"cannot write {target}: {reason(error)}") from None
    except Exception:
        if recording is not None and recording.error is not None:
            raise OutputError(f"cannot write {target}: {reason(recording.error)}") from None
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target


def atomic_append(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Append ``data`` to ``path`` (created if missing) and fsync; on failure cut the file
    back to its previous length, so it holds either all of ``data`` or none of it."""
    target = Path(path).expanduser()
    _refuse_special(target)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as error:
        raise OutputError(f"cannot write {target}: {reason(error)}") from None
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as error:
            try:
                os.ftruncate(fd, start)
            except OSError as cut:  # pragma: no cover - only on a failing disk
                log.warning("could not cut %s back to %d bytes: %s", target, start, reason(cut))
            raise OutputError(f"cannot write {target}: {reason(error)}") from None
    finally:
        os.close(fd)
    return target
