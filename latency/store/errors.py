"""How the store fails, in one sentence: its error class, what SQLite's machine-level
failures mean for the user, and the file systems on which SQLite must not be shared."""

from __future__ import annotations

import os
from pathlib import Path

from spaces.core.errors import DamagedFile


# The store file cannot be used (unwritable, not SQLite, not an hwnas store...).
StoreError = DamagedFile


# SQLite's messages for a problem of the machine, not of the code, and what they mean.
_SQLITE_REASONS = {
    "database or disk is full": "the disk is full",
    "unable to open database file": "its folder is missing or not writable",
    "attempt to write a readonly database": "it is read-only",
    "disk i/o error": "the disk reported an input/output error (a full disk does this)",
}


def sqlite_meaning(error: BaseException) -> str | None:
    """What an SQLite failure of the machine (full disk, read-only file...) means for the
    user; None for any other error."""
    text = str(error).lower()
    return next((v for k, v in _SQLITE_REASONS.items() if k in text), None)


def sqlite_reason(error: BaseException) -> str:
    """SQLite's message, with what it means for the user where that is known."""
    text = str(error).strip() or type(error).__name__
    meaning = sqlite_meaning(error)
    return f"{meaning} (SQLite: {text})" if meaning else text


# File systems on which SQLite's WAL shared-memory index is not shared between machines.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "lustre",
                       "gpfs", "ceph", "fuse.glusterfs", "glusterfs", "afs", "beegfs", "fuse.s3fs",
                       "fuse.gcsfuse", "fuse.rclone", "virtiofs", "vboxsf")


def filesystem_type(path: "str | os.PathLike[str]", mounts: str | None = None) -> str | None:
    """Type of the file system holding ``path`` (the longest mount point above it in
    ``/proc/mounts``, or ``mounts`` text in that format); None where unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(Path(path).resolve())
    best, kind = -1, None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), parts[2]
    return kind
