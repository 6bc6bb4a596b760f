"""Executors run hwnas's batches of independent jobs: here (``local``) or on Ray (``ray``).

``executors.get("ray", address="auto")`` returns an :class:`Executor`; the
search wraps its evaluator with :func:`parallel` and profiling calls
:meth:`Executor.profile`. Entries are import paths so that ``local`` never
imports Ray; ``ray`` needs the ``ray`` extra (``pip install -e ".[ray]"``).
The CLI verbs add ``--executor`` / ``--ray-address`` with :func:`add_arguments`
and build the executor with :func:`from_args`.
"""

from __future__ import annotations

import argparse
from typing import Any

from hwnas.executors.base import (CRASH, INPUT, LOST, OK, EvaluationFailed, Executor,
                                  ExecutorError, ExecutorUnavailable, Outcome)
from hwnas.executors.jobs import DeviceWorker, EvaluatorRecipe, ProfileJob
from hwnas.executors.parallel_evaluator import ParallelEvaluator, parallel
from hwnas.executors.profiling import GroupEvent, ProfileReport
from spaces.core import Registry
from spaces.errors import HwnasError

EXECUTORS: Registry[type[Executor]] = Registry("executor", {
    "local": "hwnas.executors.local:LocalExecutor",
    "ray": "hwnas.executors.ray_executor:RayExecutor",
})
names, register = EXECUTORS.names, EXECUTORS.register


def get(name: str, **options: Any) -> Executor:
    """A started executor; options go to its constructor (``address=`` for ray)."""
    return EXECUTORS.create(name, **options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and ``--ray-address``, shared by every verb that runs batches."""
    g = parser.add_argument_group("execution")
    g.add_argument("--executor", default="local", metavar="NAME",
                   help=f"where batches run: {' or '.join(names())} (default local; ray needs "
                        f"the ray extra)")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: auto, HOST:PORT or ray://HOST:PORT of an existing "
                        "cluster (default: start a local Ray instance)")


def from_args(args: argparse.Namespace) -> Executor:
    """The executor the options name; one sentence (an HwnasError) on bad input."""
    name = getattr(args, "executor", None) or "local"
    address = getattr(args, "ray_address", None)
    EXECUTORS.get(name)  # an unknown name is one sentence listing the known ones
    if address and name != "ray":
        raise HwnasError("--ray-address needs --executor ray")
    return get(name, address=address) if name == "ray" else get(name)


__all__ = [
    "CRASH", "EXECUTORS", "INPUT", "LOST", "OK", "DeviceWorker", "EvaluationFailed", "EvaluatorRecipe",
    "Executor", "ExecutorError", "ExecutorUnavailable", "GroupEvent", "Outcome",
    "ParallelEvaluator", "ProfileJob", "ProfileReport", "add_arguments", "from_args", "get",
    "names", "parallel", "register",
]
