"""The error root and its few classes, shared by every hwnas package.

Every error caused by the user's input or machine derives from :class:`HwnasError`,
so the CLI prints its message as one sentence and exits with code 2, while
genuine bugs still surface as tracebacks. A handful of classes say *what kind* of
problem it is (as Optuna's ``exceptions.py`` does); the packages' own names
(``ExportError``, ``BadSetting``, ``DeviceUnavailable``...) are these classes under
the name their callers know, not new ones.
"""

from __future__ import annotations


class HwnasError(Exception):
    """Base of every error caused by bad input or an unusable machine (exit 2)."""


class UnknownName(HwnasError, LookupError):
    """A registry (spaces, devices, strategies, predictors...) has no such name."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class InvalidArchitecture(HwnasError, ValueError):
    """An architecture (or its string form) is not a member of its space."""

    def __init__(self, space: str, reason: str, decision: str | None = None):
        self.space, self.reason, self.decision = space, reason, decision
        where = f" at decision {decision!r}" if decision else ""
        super().__init__(f"invalid {space} architecture{where}: {reason}")


class InvalidOption(HwnasError, ValueError):
    """An option or setting is out of its range, malformed, or contradicts another."""


class Infeasible(HwnasError, ValueError):
    """What is asked cannot be met: budgets no architecture satisfies, nothing left to
    choose from."""


class Incompatible(HwnasError, ValueError):
    """Two things given together do not fit: a predictor of another device or space,
    weights of another network, an engine that cannot search this space."""


class NotFound(HwnasError, FileNotFoundError):
    """Data the user named is not on this machine (nothing is downloaded)."""


class DamagedFile(HwnasError, ValueError):
    """A file hwnas reads is corrupt, empty, foreign or of another version; it is left as
    it was."""


class Unavailable(HwnasError, RuntimeError):
    """A backend, a GPU or an optional package this needs is not available here."""


class StepFailed(HwnasError, RuntimeError):
    """A step failed on this input (an export, a parity check, a measurement, an
    evaluation); what was there before is kept."""
