"""Error types shared by every hwnas package.

Every error caused by the user's input derives from :class:`HwnasError`, so the
CLI can print its message as one sentence and exit with code 2, while genuine
bugs still surface as tracebacks. ``spaces`` is the bottom layer that every
other package already imports, which is why the base class lives here.
"""

from __future__ import annotations


class HwnasError(Exception):
    """Base of every error caused by bad input (the CLI exits 2 on these)."""


class UnknownName(HwnasError, LookupError):
    """A registry (spaces, devices, strategies, predictors) has no such name."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class InvalidArchitecture(HwnasError, ValueError):
    """An architecture (or its string form) is not a member of its space."""

    def __init__(self, space: str, reason: str, decision: str | None = None):
        self.space, self.reason, self.decision = space, reason, decision
        where = f" at decision {decision!r}" if decision else ""
        super().__init__(f"invalid {space} architecture{where}: {reason}")


class BuilderError(HwnasError, ValueError):
    """A user's space builder (``file.py:function``) cannot be loaded or misbehaves."""
