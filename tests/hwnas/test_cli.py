"""The CLI boundary: a machine problem the user can fix is one sentence and exit 2
wherever it surfaces; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from hwnas.cli import main, spaces_cmd


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.csv"),
     "cannot use /data/x.csv: the disk is full (No space left on device)"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/p.pt"), "the file system is read-only"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "cannot use /root/x: permission denied"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such"), "no such file or folder"),
    (sqlite3.OperationalError("database or disk is full"), "the disk is full (SQLite: database or disk is full)"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "it is read-only"),
    (sqlite3.OperationalError("unable to open database file"), "its folder is missing or not writable"),
])
def test_machine_failures_are_one_sentence(monkeypatch, capsys, error, words):
    def fail(args):
        raise error

    monkeypatch.setattr(spaces_cmd, "run", fail)
    assert main(["spaces"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwnas: error: ") and words in err[0], err


@pytest.mark.parametrize("error", [OSError(errno.ECONNRESET, "Connection reset"),
                                   sqlite3.OperationalError("no such table: measurements"),
                                   KeyError("bug")])
def test_bugs_keep_their_traceback(monkeypatch, error):
    def fail(args):
        raise error

    monkeypatch.setattr(spaces_cmd, "run", fail)
    with pytest.raises(type(error)):
        main(["spaces"])
