"""Bad input to the NAO engine, as :class:`~spaces.errors.HwnasError` subclasses (CLI exit 2)."""

from __future__ import annotations

from spaces.core.errors import Incompatible, Infeasible, InvalidOption


# The space has no token sequence NAO can encode (no decisions, no option offsets).
UnsupportedSpace = Incompatible


# NAO was asked to train or to move embeddings with no architectures to start from.
EmptyPopulation = Infeasible


BadOption = InvalidOption  # A NAO option (epochs, hidden size, step size...) is out of its range.


