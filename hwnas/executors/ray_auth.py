"""Joining a Ray cluster that uses token authentication (Ray >= 2.52; on by default for
``ray.init()`` clusters since 2.59, and for ``ray start --head`` wherever a token exists).

What Ray 2.60 does (``ray/_private/authentication/``, ``ray/_private/worker.py``,
docs.ray.io ray-security/token-auth):

* ``RAY_AUTH_MODE=token|disabled`` is read from each process's environment; every node and
  every driver of one cluster must agree.
* The token is ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else
  ``~/.ray/auth_token``. ``ray get-auth-token --generate`` creates that file (a local
  ``ray.init()`` does too) and prints the token.
* ``ray start --head`` turns token mode on when ``RAY_AUTH_MODE`` is unset and a token
  exists; a driver turns it on by itself only for ``address="auto"``. So a driver given
  ``HOST:PORT`` of such a head joins with authentication *off* and is refused
  (``InvalidAuthToken``, after ~20 s of retries).

What :func:`prepare` does before ``ray.init(address=HOST:PORT)``: it asks the cluster's GCS
once (one RPC, ~10 ms) whether it accepts this process as configured. If the cluster
requires a token and ``RAY_AUTH_MODE`` is unset, it turns token mode on with the token
this machine has -- as Ray itself does for ``auto`` -- and asks again. A missing or wrong
token is one sentence naming the fix. A cluster without authentication is joined as it
is: a driver in token mode would refuse its workers' calls back (its actors die).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hwnas.executors.base import ExecutorUnavailable

log = logging.getLogger(__name__)

MODE_VAR, TOKEN_VAR, TOKEN_PATH_VAR = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
HINT = ("copy the cluster's token (`ray get-auth-token` on the head prints it) into "
        "~/.ray/auth_token on this machine, or point RAY_AUTH_TOKEN_PATH at a file holding it, "
        "or set RAY_AUTH_TOKEN")


def token_source() -> str | None:
    """Where this process would read a token from, in Ray's order; None if nowhere. A
    ``RAY_AUTH_TOKEN_PATH`` that cannot be read is an error here (Ray aborts the process)."""
    if os.environ.get(TOKEN_VAR, "").strip():
        return TOKEN_VAR
    path = os.environ.get(TOKEN_PATH_VAR)
    if path:
        file = Path(path).expanduser()
        try:
            text = file.read_text().strip()
        except OSError as error:
            raise ExecutorUnavailable(f"RAY_AUTH_TOKEN_PATH names {file}, which cannot be read "
                                      f"({error.strerror or type(error).__name__})") from None
        if not text:
            raise ExecutorUnavailable(f"RAY_AUTH_TOKEN_PATH names {file}, which is empty; put the "
                                      f"cluster's token in it")
        return f"RAY_AUTH_TOKEN_PATH ({file})"
    default = DEFAULT_TOKEN_FILE.expanduser()
    try:
        return str(DEFAULT_TOKEN_FILE) if default.read_text().strip() else None
    except OSError:
        return None


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ client logs a refused call as a warning on file descriptor 2; the verdict
    is ours to report, in one sentence, so the probe's own line is dropped."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def probe(address: str, timeout_ms: int = 3000) -> str:
    """``"ok"``, ``"unauthenticated"`` (the cluster refuses this process's credentials) or
    ``"unknown"`` (no answer, or this Ray cannot tell: ``ray.init`` will say more)."""
    try:
        from ray._raylet import InnerGcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:
        return "unknown"
    try:
        with _quiet_stderr():
            client = InnerGcsClient.standalone(address, None, int(timeout_ms))
    except AuthenticationError:
        return "unauthenticated"
    except Exception:  # noqa: BLE001 - timeouts, old Ray: leave the verdict to ray.init
        return "unknown"
    del client
    return "ok"


def enable_token_mode() -> None:
    """Token authentication for this process and its children, as Ray's own driver does
    for ``address="auto"`` (the environment, Ray's cached config, the token cache)."""
    os.environ[MODE_VAR] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # an older Ray: it reads the environment at init
        pass


def prepare(address: str) -> str | None:
    """Make this process able to join the cluster at ``host:port``; returns where the
    token came from when token mode was turned on here, else None. ExecutorUnavailable
    (one sentence) when the cluster will refuse this process."""
    mode = os.environ.get(MODE_VAR, "").strip().lower()
    source = token_source()
    if probe(address) != "unauthenticated":
        return None
    where = f"the Ray cluster at {address}"
    if mode == "disabled":
        raise ExecutorUnavailable(f"{where} requires token authentication but RAY_AUTH_MODE=disabled "
                                  f"here; unset it and give this machine the cluster's token: {HINT}")
    if source is None:
        raise ExecutorUnavailable(f"{where} requires token authentication and this machine has no "
                                  f"token: {HINT}")
    if mode == "token":
        raise ExecutorUnavailable(f"{where} refused the token from {source}: {HINT}")
    enable_token_mode()
    if probe(address) == "unauthenticated":
        raise ExecutorUnavailable(f"{where} refused the token from {source}: {HINT}")
    log.info("%s uses token authentication; joining with the token from %s", where, source)
    return source
