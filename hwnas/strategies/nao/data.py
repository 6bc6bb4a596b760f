"""NAO's training set: evaluated architectures as token sequences, targets scaled per head.

Tokens come from the shared representation only (``space.tokens``: decision i,
option j -> ``offset_i + j``), so one encoder/decoder serves every space. The
targets are scaled because the joint loss adds regression errors to a
reconstruction NLL: unscaled accuracies (%) or latencies (ms) would swamp it.
Cost metrics (latency, MACs) are regressed in log space, where latency is
close to additive over a network's blocks and errors are relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from hwnas.strategies.nao.errors import EmptyPopulation, UnsupportedSpace
from spaces import Arch, Space


def check_space(space: Space) -> None:
    """Raise :class:`UnsupportedSpace` unless ``space`` gives a token per decision."""
    if not getattr(space, "decisions", ()) or not callable(getattr(space, "tokens", None)):
        raise UnsupportedSpace(f"NAO needs a space with a token sequence (categorical decisions); "
                               f"{getattr(space, 'name', space)!r} has none")


def token_matrix(space: Space, archs: Sequence[Arch]) -> torch.Tensor:
    """(n, decisions) int64 tokens; the encoder's input and the decoder's target."""
    if not archs:
        raise EmptyPopulation("NAO got no architectures to encode")
    return torch.tensor([space.tokens(a) for a in archs], dtype=torch.long)


def tokens_to_archs(space: Space, tokens: torch.Tensor) -> list[Arch]:
    """Inverse of :func:`token_matrix` without validation (the caller re-validates)."""
    offsets = torch.tensor(space.option_offsets, dtype=torch.long)
    return [Arch(space.key, tuple(row)) for row in (tokens - offsets).tolist()]


@dataclass(frozen=True)
class Scaler:
    """Standardises one target (after ``log`` for positive costs) and maps predictions back.

    ``low``/``high`` keep the raw range seen in training, so a budget outside it
    can be flagged: a regression head extrapolates poorly.
    """

    log: bool
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def fit(cls, values: np.ndarray, log: bool) -> "Scaler":
        raw = np.asarray(values, dtype=float)
        if raw.size == 0:
            raise EmptyPopulation("NAO got no target values to fit")
        log = bool(log and np.all(raw > 0))
        z = np.log(raw) if log else raw
        std = float(z.std())
        return cls(log, float(z.mean()), std if std > 1e-12 else 1.0, float(raw.min()), float(raw.max()))

    def transform(self, values: np.ndarray) -> np.ndarray:
        raw = np.asarray(values, dtype=float)
        z = np.log(raw) if self.log else raw
        return (z - self.mean) / self.std

    def inverse(self, scaled: torch.Tensor) -> torch.Tensor:
        """Scaled prediction -> raw units, differentiable (for the latency loss)."""
        z = scaled * self.std + self.mean
        return torch.exp(z) if self.log else z

    def inverse_np(self, scaled: np.ndarray) -> np.ndarray:
        z = np.asarray(scaled, dtype=float) * self.std + self.mean
        return np.exp(z) if self.log else z


def augment_hook(space: Space):
    """The space's optional symmetry sampler ``f(arch, rng) -> equivalent arch`` (NAO's
    branch swap on the nao cell), found by name so the strategy stays space-agnostic."""
    return getattr(space, "augment", None) or getattr(space, "sample_symmetric", None)


def augmented(space: Space, archs: Sequence[Arch], targets: np.ndarray, copies: int,
              rng: np.random.Generator) -> tuple[list[Arch], np.ndarray]:
    """``archs`` plus ``copies`` symmetric variants of each (same targets), as NAO's
    ``controller_expand``; unchanged where the space has no symmetry hook."""
    hook = augment_hook(space)
    out, rows = list(archs), [np.asarray(targets, dtype=float)]
    if hook is None or copies <= 0:
        return out, rows[0]
    for _ in range(copies):
        out.extend(hook(a, rng) for a in archs)
        rows.append(rows[0])
    return out, np.concatenate(rows, axis=0)
