"""docs/ray.md's "existing cluster" recipe with token authentication on: a real head
(``ray start --head``) and a device worker node started from the command line in a temp
dir, and ``hwnas profile --executor ray --ray-address HOST:PORT`` as a separate driver
process. Skipped with a reason where Ray cannot start here; the head and the worker are
always stopped (their whole process sessions), never any other Ray on the machine."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from hwnas.executors.base import ExecutorUnavailable  # noqa: E402
from hwnas.executors.ray_auth import token_source  # noqa: E402
from latency.store import MeasurementStore  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "-n", "4", "--quick",
         "--group", "2", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session(leader: int) -> list[int]:
    """Process ids whose session is ``leader``'s (everything that ray start spawned)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == leader:  # after "pid (comm)": state ppid pgrp session
            pids.append(int(stat.parent.name))
    return pids


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to ``ray start --block`` (it stops what it started), then SIGKILL for any
    process of its session still there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    for pid in _session(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def _start(args: list[str], env: dict, log: Path, ready: str, timeout: float = 90) -> subprocess.Popen:
    proc = subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if ready in text:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    _stop(proc)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    pytest.skip(f"Ray could not start a node here: {(lines or ['no output'])[-1][:200]}")


@pytest.fixture(scope="module")
def cluster():
    """A token-authenticated head offering device:ort:cpu and a worker node offering
    device:torch:cpu, both on this machine (a short temp dir: Ray's socket paths are long)."""
    if not RAY.is_file():
        pytest.skip(f"the ray command is not installed beside {sys.executable}")
    tmp = Path(tempfile.mkdtemp(prefix="hwr-", dir="/tmp"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    nodes = []
    try:
        nodes.append(_start(["--head", "--port", str(port), "--num-cpus", "1", "--temp-dir",
                             str(tmp / "ray"), "--include-dashboard=false",
                             '--resources={"device:ort:cpu": 1}'], env, tmp / "head.log",
                            "Ray runtime started"))
        nodes.append(_start(["--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                             '--resources={"device:torch:cpu": 1}'], env, tmp / "worker.log",
                            "Ray runtime started"))
        (tmp / "home").mkdir()
        yield {"address": f"127.0.0.1:{port}", "token": token, "tmp": tmp}
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(tmp, ignore_errors=True)


def _driver(cluster: dict, device: str, db: Path, **env: str) -> subprocess.CompletedProcess:
    """``hwnas profile`` as its own process, with a HOME of its own (no ~/.ray/auth_token of
    this machine) and no RAY_AUTH_MODE unless given: a new user's shell."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    clean.update(HOME=str(cluster["tmp"] / "home"), PYTHONPATH=str(ROOT), **env)
    cmd = [sys.executable, "-m", "hwnas", "profile", "--device", device, *SMALL, "--db", str(db),
           "--executor", "ray", "--ray-address", cluster["address"]]
    return subprocess.run(cmd, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=240)


def test_a_driver_with_the_token_profiles_on_the_head_and_on_a_worker_node(cluster, tmp_path):
    db = tmp_path / "lat.sqlite"
    for device in ("ort:cpu", "torch:cpu"):  # ort:cpu is on the head, torch:cpu on the worker node
        done = _driver(cluster, device, db, RAY_AUTH_TOKEN_PATH=str(cluster["token"]))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "4 measured now, 0 already stored" in done.stdout
    with MeasurementStore(db, readonly=True) as store:
        frame = store.frame()
    counts = frame.groupby(frame.device_label.str.split("/").str[0]).arch.nunique().to_dict()
    assert counts == {"ort:cpu": 4, "torch:cpu": 4} and len(frame) == 8


@pytest.mark.parametrize("env,message", [
    ({}, "requires token authentication and this machine has no token"),
    ({"RAY_AUTH_TOKEN": "not-the-token"}, "refused the token from RAY_AUTH_TOKEN"),
    ({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "x"}, "but RAY_AUTH_MODE=disabled here"),
])
def test_a_driver_without_the_right_token_is_one_sentence(cluster, tmp_path, env, message):
    started = time.monotonic()
    done = _driver(cluster, "ort:cpu", tmp_path / "lat.sqlite", **env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hwnas: error: the Ray cluster at "
                                                   f"{cluster['address']} ") and message in lines[0]
    assert "ray get-auth-token" in lines[0] and time.monotonic() - started < 60


def test_token_sources_follow_rays_order(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_source() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert token_source() == "~/.ray/auth_token"
    file = tmp_path / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(file))
    with pytest.raises(ExecutorUnavailable, match="RAY_AUTH_TOKEN_PATH names .*token, which cannot be read"):
        token_source()
    file.write_text("  \n")
    with pytest.raises(ExecutorUnavailable, match="which is empty"):
        token_source()
    file.write_text("abc")
    assert token_source() == f"RAY_AUTH_TOKEN_PATH ({file})"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")
    assert token_source() == "RAY_AUTH_TOKEN"
