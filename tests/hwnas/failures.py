"""Helpers of the bad-input tests: the promise is exit 2, exactly one line on stderr
starting ``hwnas: error:``, no traceback, and every file that was there byte-identical.

A real full disk or read-only folder is impractical in a test (and root ignores
permission bits), so they are faked where hwnas meets the OS: ``spaces.core.files``'
``os.replace`` / ``os.write`` raising ENOSPC, ``os.access`` saying no, the free space
reported as 0 bytes.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

from hwnas.cli import main


def digests(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (files or folders), by path."""
    out = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fails_in_one_sentence(capsys, *argv, contains: str = "") -> str:
    """Run the CLI in-process; assert exit 2 and one ``hwnas: error:`` line; return it."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), err
    assert "Traceback" not in err
    assert contains in lines[0], lines[0]
    return lines[0]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def full_disk(monkeypatch) -> None:
    """Every file write through spaces.core fails as on a full disk."""
    from spaces.core import files

    monkeypatch.setattr(files.os, "replace", _enospc)
    monkeypatch.setattr(files.os, "write", _enospc)


def no_free_space(monkeypatch) -> None:
    """The disk reports 0 bytes free (what hwnas checks before expensive work)."""
    from spaces.core import files

    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: SimpleNamespace(free=0))


def read_only_folders(monkeypatch) -> None:
    """Every folder refuses writes (os.access; root would ignore a chmod)."""
    from spaces.core import files

    real = os.access
    monkeypatch.setattr(files.os, "access",
                        lambda path, mode, **kw: False if mode & os.W_OK else real(path, mode))
