"""The ``ray`` executor: evaluation chunks as Ray tasks, profiling on device actors.

Without an address it starts a private local Ray instance (all cores, one
``device:<spec>`` resource per device that runs here) and stops it on close;
``address="auto"`` joins the cluster this machine belongs to, ``host:port`` or
``ray://host:port`` a remote one. Addresses are probed with a short TCP
connect first, because Ray itself waits a minute or more for a head that is
not there.

Token authentication (Ray's default for new clusters): before joining ``host:port`` the
driver asks the cluster whether it needs a token and, if so, joins with this machine's
token (``ray_auth``); a missing or wrong token is one sentence naming the fix.

Retries: a task whose worker process dies is re-run up to ``max_retries``
times (Ray's own retry); an exception raised by the job is never retried
(``retry_exceptions=False``): HwnasErrors come back as INPUT outcomes, other
exceptions as CRASH outcomes with their traceback.
"""

from __future__ import annotations

import importlib
import logging
import math
import socket
from typing import Any, Callable, Sequence

from hwnas.executors.base import CRASH, LOST, Executor, ExecutorUnavailable, Outcome
from hwnas.executors.jobs import EvaluatorRecipe, ProfileJob, crash_outcomes, evaluate_chunk
from hwnas.executors.profiling import GroupEvent, ProfileReport
from spaces import Arch

INSTALL_HINT = 'pip install -e ".[ray]"'
DEFAULT_RAY_PORT = 6379
CLIENT_PORT = 10001


def import_ray() -> Any:
    """``ray``, or one sentence naming the extra that installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ExecutorUnavailable(f"the ray executor needs Ray, which is not installed; "
                                  f"install the extra with {INSTALL_HINT}") from None


def endpoint(address: str) -> tuple[str, int] | None:
    """``host:port`` to probe for an address, or None for ``auto`` (found by Ray)."""
    text = address.strip()
    if text in ("auto", "local"):
        return None
    client = text.startswith("ray://")
    rest = text[len("ray://"):] if client else text
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(CLIENT_PORT if client else DEFAULT_RAY_PORT)
    if not host or not port.isdigit():
        raise ExecutorUnavailable(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """Raise one sentence unless something listens at the address within ``timeout_s``."""
    target = endpoint(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, (socket.timeout, TimeoutError)):
            reason = f"no answer within {timeout_s:g} s"
        raise ExecutorUnavailable(f"cannot reach the Ray cluster at {address} ({reason})") from None


class RayExecutor(Executor):
    """Runs jobs on Ray. ``num_cpus``/``object_store_mb`` size a local instance only;
    ``chunks_per_cpu`` sets how finely a batch is split (more chunks balance better,
    fewer cost less overhead)."""

    name = "ray"
    distributed = True

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 object_store_mb: int | None = None, max_retries: int = 3, max_restarts: int = 3,
                 chunks_per_cpu: int = 2, connect_timeout_s: float = 5.0,
                 resources: dict[str, float] | None = None) -> None:
        self.ray = import_ray()
        self.address = address
        self.max_retries, self.max_restarts = int(max_retries), int(max_restarts)
        self.chunks_per_cpu = max(1, int(chunks_per_cpu))
        self._owns = False
        self._recipes: dict[str, Any] = {}
        local = address in (None, "", "local")
        if not local:
            probe(address, connect_timeout_s)
        if self.ray.is_initialized():
            pass  # a driver that already joined a cluster (a notebook, a test): use it
        elif local:
            self._start_local(num_cpus, object_store_mb, resources)
        else:
            self._connect(address)
        self._task = self.ray.remote(max_retries=self.max_retries, retry_exceptions=False)(
            evaluate_chunk)

    # ---- connecting ---------------------------------------------------------------------
    def _start_local(self, num_cpus: int | None, object_store_mb: int | None,
                     resources: dict[str, float] | None) -> None:
        from hwnas.executors.ray_profiling import local_device_resources

        kwargs: dict[str, Any] = dict(address="local", num_cpus=num_cpus, include_dashboard=False,
                                      log_to_driver=False, logging_level=logging.ERROR,
                                      resources=resources if resources is not None
                                      else local_device_resources())
        if object_store_mb:
            kwargs["object_store_memory"] = int(object_store_mb) * 2**20
        try:
            self.ray.init(**kwargs)
        except Exception as error:  # noqa: BLE001 - Ray raises many types; say it in one sentence
            raise ExecutorUnavailable(f"cannot start a local Ray instance: "
                                      f"{str(error).strip().splitlines()[0]}") from None
        self._owns = True

    def _connect(self, address: str) -> None:
        if endpoint(address) is not None and not address.strip().startswith("ray://"):
            from hwnas.executors.ray_auth import prepare

            prepare(address.strip())
        try:
            self.ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except ValueError as error:
            if "ray[client]" in str(error):
                raise ExecutorUnavailable('connecting with ray:// needs Ray Client; install it with '
                                          'pip install "ray[client]"') from None
            raise ExecutorUnavailable(f"cannot join the Ray cluster at {address}: {error}") from None
        except ConnectionError as error:
            if address.strip() == "auto":
                raise ExecutorUnavailable("--ray-address auto found no running Ray cluster on this "
                                          "machine; start one with ray start --head, or give "
                                          "HOST:PORT") from None
            raise ExecutorUnavailable(f"cannot join the Ray cluster at {address}: "
                                      f"{str(error).strip().splitlines()[0]}") from None
        except Exception as error:  # noqa: BLE001 - TimeoutError, RuntimeError...
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ExecutorUnavailable(f"cannot join the Ray cluster at {address}: {first}") from None
        self._owns = True

    # ---- evaluation ---------------------------------------------------------------------
    @property
    def parallelism(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _recipe_ref(self, recipe: EvaluatorRecipe) -> Any:
        """The recipe in the object store, once per recipe (not once per task)."""
        if recipe.key not in self._recipes:
            self._recipes[recipe.key] = self.ray.put(recipe)
        return self._recipes[recipe.key]

    def map_evaluate(self, recipe: EvaluatorRecipe, archs: Sequence[Arch]) -> list[Outcome]:
        archs = list(archs)
        if not archs:
            return []
        parts = min(len(archs), self.parallelism * self.chunks_per_cpu)
        size = math.ceil(len(archs) / parts)
        chunks = [archs[i:i + size] for i in range(0, len(archs), size)]
        ref = self._recipe_ref(recipe)
        futures = [self._task.remote(ref, chunk) for chunk in chunks]
        out: list[Outcome] = []
        for future, chunk in zip(futures, chunks):
            keys = [f"{a.space}:{','.join(map(str, a.choices))}" for a in chunk]
            try:
                out.extend(self.ray.get(future))
            except self.ray.exceptions.RayTaskError as error:  # a bug in the job: not retried
                out.extend(crash_outcomes(keys, str(error), CRASH))
            except self.ray.exceptions.RayError as error:  # worker/node died beyond the retries
                out.extend(crash_outcomes(
                    keys, f"worker lost after {self.max_retries} retries: "
                          f"{str(error).strip().splitlines()[0]}", LOST))
        return out

    def release(self, recipe: EvaluatorRecipe) -> None:
        self._recipes.pop(recipe.key, None)

    # ---- profiling ----------------------------------------------------------------------
    def profile(self, job: ProfileJob, archs: "Sequence[Arch | str]", store: Any,
                on_group: Callable[[GroupEvent], None] | None = None) -> ProfileReport:
        from hwnas.executors.ray_profiling import profile_on_ray

        return profile_on_ray(self.ray, job, archs, store, max_restarts=self.max_restarts,
                              max_task_retries=self.max_retries, on_group=on_group)

    # ---- lifetime -----------------------------------------------------------------------
    def describe(self) -> str:
        try:
            res = self.ray.cluster_resources()
        except Exception:  # noqa: BLE001 - only a label
            return "ray"
        devices = sorted(k for k in res if k.startswith("device:"))
        return (f"ray ({len(self.ray.nodes())} node(s), {int(res.get('CPU', 0))} CPUs"
                + (f", {', '.join(devices)}" if devices else "") + ")")

    def close(self) -> None:
        self._recipes.clear()
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns = False
