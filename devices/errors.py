"""Errors of the devices package.

They derive from :class:`spaces.errors.HwnasError`, so the CLI prints them as one
sentence and exits 2 instead of showing a traceback for a missing GPU.
"""

from __future__ import annotations

from spaces.errors import HwnasError


class DeviceUnavailable(HwnasError, RuntimeError):
    """The requested backend cannot run on this machine (no GPU, library missing,
    an execution provider that silently fell back to CPU)."""


class ProfilingError(HwnasError, RuntimeError):
    """A network could not be prepared for timing (export, session or engine build failed)."""


class InvalidSetting(HwnasError, ValueError):
    """A timing setting (threads, rounds, statistic...) is out of range."""
