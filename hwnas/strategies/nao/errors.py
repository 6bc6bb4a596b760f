"""Bad input to the NAO engine, as :class:`~spaces.errors.HwnasError` subclasses (CLI exit 2)."""

from __future__ import annotations

from spaces.errors import HwnasError


class UnsupportedSpace(HwnasError, ValueError):
    """The space has no token sequence NAO can encode (no decisions, no option offsets)."""


class EmptyPopulation(HwnasError, ValueError):
    """NAO was asked to train or to move embeddings with no architectures to start from."""


class BadOption(HwnasError, ValueError):
    """A NAO option (epochs, hidden size, step size...) is out of its range."""
