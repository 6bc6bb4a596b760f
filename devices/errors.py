"""Errors of the devices package.

They derive from :class:`spaces.errors.HwnasError`, so the CLI prints them as one
sentence and exits 2 instead of showing a traceback for a missing GPU.
"""

from __future__ import annotations

from spaces.core.errors import InvalidOption, StepFailed, Unavailable


# The requested backend cannot run on this machine (no GPU, library missing, an execution provider
# that silently fell back to CPU).
DeviceUnavailable = Unavailable


# A network could not be prepared for timing (export, session or engine build failed).
ProfilingError = StepFailed


InvalidSetting = InvalidOption  # A timing setting (threads, rounds, statistic...) is out of range.


