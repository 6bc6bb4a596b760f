"""spaces.core.files: atomic writes keep the previous file on every failure, refuse
non-regular targets, and leave no temporary file behind."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from spaces.core import files
from spaces.core import OutputError, atomic_append, atomic_write, check_writable, os_error_sentence


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_write_replaces_whole(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["replace", "fsync", "write"])
def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch, where):
    target = tmp_path / "model.bin"
    target.write_bytes(b"the good file")
    before = digest(target)
    if where == "write":
        def data(handle):
            handle.write(b"partial")
            enospc()
    else:
        data = b"x" * 1000
        monkeypatch.setattr(files.os, where, enospc)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write(target, data)
    assert digest(target) == before
    assert leftovers(tmp_path) == []


def test_writer_wrapping_the_os_error_is_still_an_output_error(tmp_path, monkeypatch):
    """A serialiser that turns the disk's OSError into its own RuntimeError (as some
    writers do) is still reported as the full disk, not as a bug."""
    class FullFile(io.BytesIO):
        def write(self, data):
            enospc()

    def fake_fdopen(fd, mode):
        os.close(fd)
        return FullFile()

    def serialiser(handle):
        try:
            handle.write(b"abc")
        except OSError:
            raise RuntimeError("file write failed") from None

    monkeypatch.setattr(files.os, "fdopen", fake_fdopen)
    with pytest.raises(OutputError, match="No space left"):
        atomic_write(tmp_path / "p.pt", serialiser)
    assert not (tmp_path / "p.pt").exists() and leftovers(tmp_path) == []


def test_a_bug_in_the_writer_keeps_its_exception(tmp_path):
    def broken(handle):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        atomic_write(tmp_path / "x", broken)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "devnull_link", "folder"])
def test_non_regular_targets_are_refused_untouched(tmp_path, kind):
    target = tmp_path / "out.onnx"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "devnull_link":
        target.symlink_to("/dev/null")
    else:
        target.mkdir()
    for call in (lambda: atomic_write(target, b"data"), lambda: check_writable(target),
                 lambda: atomic_append(target, b"data")):
        with pytest.raises(OutputError, match="folder|not a regular file"):
            call()
    if kind == "devnull_link":
        assert target.is_symlink() and os.readlink(target) == "/dev/null"
    elif kind == "fifo":
        assert not target.is_file() and target.exists()
    assert leftovers(tmp_path) == []


def test_check_writable_missing_folder_and_unwritable_folder(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "no" / "such" / "x.pt")
    assert check_writable(tmp_path / "new" / "x.pt", create_parent=True)
    # root ignores permission bits, so the folder's verdict comes from a fake os.access
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_writable(tmp_path / "x.pt")


def test_check_writable_refuses_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    with pytest.raises(OutputError, match="the disk is full \\(10 bytes free"):
        check_writable(tmp_path / "x.pt")
    monkeypatch.undo()
    assert check_writable(tmp_path / "x.pt") == tmp_path / "x.pt"


def test_the_free_space_check_is_about_the_file_to_be_written(tmp_path, monkeypatch):
    """256 KiB free: a 21 KB file fits (a fixed 1 MiB rule refused it); 300 KB does not,
    and the sentence gives the file's size and the free space."""
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: SimpleNamespace(free=256 * 1024))
    assert check_writable(tmp_path / "p.pt", size_bytes=21_000)
    atomic_write(tmp_path / "p.pt", b"x" * 21_000)
    with pytest.raises(OutputError, match=r"the file is 293.0 KiB and only 256.0 KiB free"):
        check_writable(tmp_path / "big.pt", size_bytes=300_000)
    with pytest.raises(OutputError, match=r"the file is 293.0 KiB and only 256.0 KiB free"):
        atomic_write(tmp_path / "p.pt", b"y" * 300_000)
    assert (tmp_path / "p.pt").read_bytes() == b"x" * 21_000  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pt"]  # no temporary left


def test_room_needed_grows_with_the_file():
    assert files.room_needed(1) == 8192  # one block and the one-block minimum margin
    assert files.room_needed(21_000) == 24_576 + 4096
    assert files.room_needed(10_000_000) == 10_002_432 + 500_000


def test_a_small_real_disk_takes_what_fits_and_refuses_what_does_not(small_tmpfs):
    free = files.free_bytes(small_tmpfs)
    fits = b"a" * 21_000
    atomic_write(small_tmpfs / "p.pt", fits)
    assert (small_tmpfs / "p.pt").read_bytes() == fits
    with pytest.raises(OutputError, match=r"only .* free on its disk"):
        atomic_write(small_tmpfs / "big.bin", b"b" * (free + 1))
    assert not (small_tmpfs / "big.bin").exists()


def test_append_is_all_or_nothing(tmp_path, monkeypatch):
    log = tmp_path / "cache.jsonl"
    atomic_append(log, "one\n")
    before = digest(log)
    calls = []

    def half_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return os_write(fd, bytes(data[:3]))  # a short write, then the disk is full
        enospc()

    os_write = os.write
    monkeypatch.setattr(files.os, "write", half_then_full)
    with pytest.raises(OutputError, match="No space left"):
        atomic_append(log, "two two two\n")
    monkeypatch.undo()
    assert digest(log) == before
    atomic_append(log, "three\n")
    assert log.read_text() == "one\nthree\n"


def test_os_error_sentences():
    full = OSError(errno.ENOSPC, "No space left on device", "/x/y.csv")
    assert os_error_sentence(full) == "cannot use /x/y.csv: the disk is full (No space left on device)"
    assert "read-only" in os_error_sentence(OSError(errno.EROFS, "Read-only file system", "/m"))
    assert os_error_sentence(OSError(errno.EACCES, "Permission denied")) == "permission denied"
    assert os_error_sentence(OSError(errno.ECONNRESET, "reset")) is None
