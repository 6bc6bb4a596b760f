"""Every file hwnas writes goes through :func:`atomic_write`.

Why: a model, a predictor or a table that is half written after a kill, a full disk
or a bad path is worse than none -- it replaces the good file the user had. So a
file is written to a temporary file in the target's own folder, flushed and
fsynced, then renamed over the target (atomic on POSIX). A target that exists but
is not a regular file (a device such as /dev/full, a folder, a FIFO) is refused
before anything is written, because ``os.replace`` would silently swap it for a
regular file. On any failure the previous file is intact and no temporary file
is left.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, IO

from spaces.errors import HwnasError



class OutputError(HwnasError, OSError):
    """A file cannot be written where asked (bad path, no space, read-only, not a file)."""


def reason(error: OSError) -> str:
    """The OS's own short reason (e.g. "No space left on device"), without errno or path."""
    return (error.strerror or str(error) or type(error).__name__).rstrip(".")


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


def check_writable(path: str | os.PathLike[str], *, create_parent: bool = False) -> Path:
    """Refuse, before expensive work, a target that cannot be written: an existing
    non-regular file, a missing (unless ``create_parent``) or unwritable folder."""
    target = Path(path).expanduser()
    _refuse_special(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        if create_parent and not parent.exists():
            return target
        raise OutputError(f"cannot write {target}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: folder {parent} is not writable")
    return target


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
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as error:
        raise OutputError(f"cannot write {target}: {reason(error)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target
