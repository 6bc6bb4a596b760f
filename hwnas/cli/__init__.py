"""The ``hwnas`` command line.

Each verb is a module in this package that defines ``COMMAND`` (its name),
``ORDER`` (its place in ``--help``), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are discovered, so adding a verb means adding a
file. Errors caused by the user's input (:class:`spaces.errors.HwnasError`)
print one sentence and exit 2, and so do the failures of the user's machine that
the user can fix -- a full disk, a read-only or missing folder, no permission,
SQLite's "database or disk is full" -- wherever they surface; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sqlite3
import sys
from types import ModuleType

from spaces.core import os_error_sentence
from spaces.errors import HwnasError

import hwnas

EXIT_BAD_INPUT = 2


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "COMMAND"):
            modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.COMMAND))


def _verbosity() -> argparse.ArgumentParser:
    """``-q`` / ``-v`` on every verb, mapped to the level of hwnas's loggers."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="count", default=0,
                       help="say less: tables and notes off (-q), warnings off too (-qq)")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="say more: the library's progress messages (-v), debugging (-vv)")
    return common


LOGGERS = ("hwnas", "spaces", "devices", "latency")


def _logging_state() -> list[tuple[logging.Logger, list[logging.Handler], int, bool]]:
    return [(log, list(log.handlers), log.level, log.propagate)
            for log in map(logging.getLogger, LOGGERS)]


def _restore_logging(state: list[tuple[logging.Logger, list[logging.Handler], int, bool]]) -> None:
    """Put the package loggers back as they were before ``main`` (an in-process call, e.g.
    from a test or a notebook, leaves no CLI handler or level behind)."""
    for log, handlers, level, propagate in state:
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate


def configure_logging(verbose: int, quiet: int) -> int:
    """Library messages go through ``logging`` (never print); the CLI shows them on stderr
    at a level set by -v/-q. Returns the level."""
    level = {-2: logging.CRITICAL, -1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-2, min(verbose - quiet, 2)), logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hwnas: %(message)s"))
    for name in LOGGERS:
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False
    return level


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware multi-objective NAS: profile, predict, search, export.",
    )
    parser.add_argument("--version", action="version", version=f"hwnas {hwnas.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _verbosity()
    for module in _command_modules():
        doc = (module.__doc__ or "").strip().splitlines()
        help_line = doc[0] if doc else module.COMMAND
        cmd_parser = sub.add_parser(module.COMMAND, help=help_line, description=help_line,
                                    parents=[common])
        module.add_arguments(cmd_parser)
        cmd_parser.set_defaults(_run=module.run)
    return parser


def fail(message: str) -> int:
    """Print one sentence for the user and return the bad-input exit code."""
    message = message.strip()
    if message and not message.endswith((".", "!", "?")):
        message += "."
    print(f"hwnas: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def environment_sentence(error: BaseException) -> str | None:
    """One sentence for a machine problem the user can fix; None for a bug."""
    if isinstance(error, OSError):
        return os_error_sentence(error)
    if isinstance(error, sqlite3.Error):
        from latency.store import sqlite_meaning, sqlite_reason

        if sqlite_meaning(error) is not None:
            return f"the measurement store cannot be used: {sqlite_reason(error)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # for messages naming a command
    if not getattr(args, "_run", None):
        if "search" not in {m.COMMAND for m in _command_modules()}:
            parser.print_help()
            return 0
        # `hwnas` alone runs the main job, exactly like `hwnas search`.
        args = parser.parse_args(["search"])
        args._argv = ["search"]
    saved = _logging_state()
    configure_logging(getattr(args, "verbose", 0), getattr(args, "quiet", 0))
    try:
        return _run(args)
    finally:
        _restore_logging(saved)


def _run(args: argparse.Namespace) -> int:
    """The verb, with user-fixable failures as one sentence and exit code 2."""
    try:
        return int(args._run(args) or 0)
    except HwnasError as err:
        return fail(str(err))
    except BrokenPipeError:  # e.g. `hwnas devices | head`: the reader left, not an error
        sys.stderr.close()
        return 0
    except (OSError, sqlite3.Error) as err:
        sentence = environment_sentence(err)
        if sentence is None:
            raise
        return fail(sentence)
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
