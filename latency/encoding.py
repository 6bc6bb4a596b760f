"""Predictor inputs: the one-hot of an architecture's choices, plus optional static costs.

Every predictor reads the same vector so that a soft architecture (per-decision
probabilities laid out like ``space.one_hot``) can flow through it in place of a
one-hot; that is what makes ``predict_soft`` differentiable w.r.t. architecture
parameters.

Extra features (``macs``, ``params``) come from ``space.cost``, which builds the
network and runs ``FlopCounterMode`` -- about 0.3-0.8 s per architecture here, far
too slow for the 15,625 NB201 cells. :class:`CostTable` therefore first probes
whether the space's costs are *additive over decisions* (a base architecture plus
one-decision changes predicts a handful of random architectures exactly); when they
are, costs of any architecture, and the expected cost of a soft one, come from that
table. Otherwise every architecture is built once and its cost cached (memory and,
optionally, a JSON file per space key).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from spaces.arch import Arch
from spaces.base import Space
from spaces.core.errors import InvalidOption

log = logging.getLogger(__name__)

EXTRAS = ("macs", "params")


EncodingError = InvalidOption  # A soft architecture or an extra feature does not fit the space.


def default_cache_dir() -> Path | None:
    """``$HWNAS_CACHE_DIR`` (``""`` disables the disk cache) or ``~/.cache/hwnas``."""
    env = os.environ.get("HWNAS_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    return Path.home() / ".cache" / "hwnas"


_VALIDATED: dict[str, set[Arch]] = {}
_VALIDATED_LIMIT = 2_000_000


def as_archs(space: Space, archs: "Iterable[Arch | str]") -> list[Arch]:
    """Accept Arch objects or string forms; each is validated against ``space`` so an
    architecture of another space fails with InvalidArchitecture, not a shape error.
    Arch objects already validated for this space key are remembered (a benchmark
    predicts the same 15,625 cells hundreds of times)."""
    seen = _VALIDATED.setdefault(space.key, set())
    if len(seen) > _VALIDATED_LIMIT:
        seen.clear()
    out = []
    for arch in archs:
        if isinstance(arch, str):
            arch = space.from_string(arch)
        elif arch not in seen:
            space.validate(arch)
        seen.add(arch)
        out.append(arch)
    return out


def one_hot(space: Space, archs: Sequence[Arch]) -> np.ndarray:
    """``space.one_hot_many`` vectorised for archs that are already validated (about
    50x faster: predictors encode the whole 15,625-cell NB201 table many times)."""
    rows = len(archs)
    out = np.zeros((rows, space.num_options), dtype=np.float32)
    if rows:
        choices = np.array([a.choices for a in archs], dtype=np.int64).reshape(rows, len(space.decisions))
        np.put_along_axis(out, choices + np.asarray(space.option_offsets, dtype=np.int64), 1.0, axis=1)
    return out


def soft_batch(space: Space, probs: "torch.Tensor | np.ndarray | Sequence[float]"
               ) -> tuple[torch.Tensor, bool]:
    """Check a soft architecture, ``(num_options,)`` or ``(B, num_options)``; return it
    as a 2-D float tensor (gradients kept) and whether the input was 1-D."""
    if not isinstance(probs, torch.Tensor):
        probs = torch.as_tensor(np.asarray(probs, dtype=np.float32))
    if probs.dim() not in (1, 2) or probs.shape[-1] != space.num_options:
        raise EncodingError(f"soft architecture for {space.key} must have shape ({space.num_options},) or "
                            f"(B, {space.num_options}), got {tuple(probs.shape)}")
    single = probs.dim() == 1
    probs = probs.unsqueeze(0) if single else probs
    return probs.to(torch.float32) if not probs.is_floating_point() else probs, single


class CostTable:
    """MACs and params of architectures of one space, additive table or per-arch cache."""

    def __init__(self, space: Space, cache_dir: "str | os.PathLike[str] | None" = "default",
                 verify: int = 6, seed: int = 0) -> None:
        self.space = space
        self.cache_dir = default_cache_dir() if cache_dir == "default" else (
            Path(cache_dir) if cache_dir is not None else None)
        self.verify, self.seed = verify, seed
        self._costs: dict[str, tuple[int, int]] = {}
        self._table: np.ndarray | None = None   # (num_options, 2) deltas
        self._base: np.ndarray | None = None    # (2,) costs of the all-base arch minus its deltas
        self._probed = False
        self._load_disk()

    # ---- disk cache ---------------------------------------------------------------------
    @property
    def _path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.space.key)
        return self.cache_dir / "costs" / f"{safe}.json"

    def _load_disk(self) -> None:
        path = self._path
        if path is None or not path.is_file():
            return
        try:
            data = json.loads(path.read_text())
            if data.get("space") == self.space.key:
                self._costs.update({k: (int(v[0]), int(v[1])) for k, v in data["costs"].items()})
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass  # a damaged cache is rebuilt, never trusted

    def _save_disk(self) -> None:
        path = self._path
        if path is None:
            return
        from spaces.core import OutputError, atomic_write

        try:
            atomic_write(path, json.dumps({"space": self.space.key, "costs": self._costs}))
        except OutputError as error:  # the cache only saves time: say so, carry on
            log.info("cost cache %s not written: %s", path, error)

    # ---- exact costs -----------------------------------------------------------------------
    def _exact(self, archs: Sequence[Arch]) -> np.ndarray:
        new = False
        out = np.zeros((len(archs), 2), dtype=np.float64)
        for i, arch in enumerate(archs):
            key = self.space.to_string(arch)
            if key not in self._costs:
                cost = self.space.cost(arch)
                self._costs[key] = (int(cost.macs), int(cost.params))
                new = True
            out[i] = self._costs[key]
        if new:
            self._save_disk()
        return out

    # ---- additive probe -----------------------------------------------------------------
    def _probe(self) -> None:
        """Fill ``_table`` when costs are additive over decisions (checked exactly)."""
        self._probed = True
        space = self.space
        base = space.sample(self.seed)
        probes, slots = [base], []
        for i, decision in enumerate(space.decisions):
            for option in range(len(decision)):
                if option == base.choices[i]:
                    continue
                arch = Arch(space.key, base.choices[:i] + (option,) + base.choices[i + 1:])
                if not space.is_valid(arch):
                    return  # a rule couples decisions: no single-change probe, stay exact
                probes.append(arch)
                slots.append(space.option_offsets[i] + option)
        costs = self._exact(probes)
        table = np.zeros((space.num_options, 2))
        for slot, cost in zip(slots, costs[1:]):
            table[slot] = cost - costs[0]
        base_cost = costs[0] - one_hot(space, [base])[0].astype(np.float64) @ table
        checks = space.sample_many(self.verify, self.seed + 1)
        predicted = base_cost + one_hot(space, checks).astype(np.float64) @ table
        if np.array_equal(np.rint(predicted), self._exact(checks)):
            self._table, self._base = table, base_cost

    @property
    def additive(self) -> bool:
        if not self._probed:
            self._probe()
        return self._table is not None

    def costs(self, archs: Sequence[Arch]) -> np.ndarray:
        """``(N, 2)`` float array of MACs and params."""
        if self.additive:
            return np.rint(self._base + one_hot(self.space, list(archs)).astype(np.float64) @ self._table)
        return self._exact(list(archs))

    def macs(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.costs(archs)[:, 0]

    def soft_costs(self, probs: torch.Tensor) -> torch.Tensor:
        """Expected MACs/params ``(B, 2)`` of a soft architecture (exact for an additive
        space: expectation is linear); EncodingError when the space is not additive."""
        if not self.additive:
            raise EncodingError(f"costs of {self.space.key} are not additive over decisions, so the "
                                f"MACs of a soft architecture are undefined")
        table = torch.as_tensor(self._table, dtype=probs.dtype, device=probs.device)
        base = torch.as_tensor(self._base, dtype=probs.dtype, device=probs.device)
        return base + probs @ table


_SHARED: dict[str, CostTable] = {}


def shared_cost_table(space: Space) -> CostTable:
    """One CostTable per space key in this process, so every predictor reuses its probe."""
    table = _SHARED.get(space.key)
    if table is None:
        table = _SHARED[space.key] = CostTable(space)
    return table


class Encoder:
    """One-hot (+ ``log(1 + MACs/1e6)`` / ``log(1 + params/1e6)`` columns) of a space.

    The extras are logs because latency grows roughly with MACs over three orders of
    magnitude, and a log keeps the column on the one-hot's scale.
    """

    def __init__(self, space: Space, extras: Sequence[str] = (),
                 cost_table: CostTable | None = None) -> None:
        extras = tuple(extras)
        unknown = [e for e in extras if e not in EXTRAS]
        if unknown:
            raise EncodingError(f"unknown extra feature(s) {', '.join(unknown)}; known: {', '.join(EXTRAS)}")
        self.space, self.extras = space, extras
        self._costs = cost_table

    @property
    def name(self) -> str:
        return "+".join(("onehot", *self.extras))

    @property
    def dim(self) -> int:
        return self.space.num_options + len(self.extras)

    @property
    def cost_table(self) -> CostTable:
        if self._costs is None:
            self._costs = shared_cost_table(self.space)
        return self._costs

    def _extra_columns(self, costs: np.ndarray) -> np.ndarray:
        cols = [np.log1p(costs[:, EXTRAS.index(e)] / 1e6) for e in self.extras]
        return np.stack(cols, 1)

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        """``(N, dim)`` float32 features of validated archs."""
        onehot = one_hot(self.space, list(archs))
        if not self.extras:
            return onehot
        extra = self._extra_columns(self.cost_table.costs(archs))
        return np.concatenate([onehot, extra.astype(np.float32)], 1)

    def encode_soft(self, probs: torch.Tensor) -> torch.Tensor:
        """Features of a 2-D soft batch; extras use expected costs (additive spaces only)."""
        if not self.extras:
            return probs
        costs = self.cost_table.soft_costs(probs)
        cols = [torch.log1p(costs[:, EXTRAS.index(e)] / 1e6) for e in self.extras]
        return torch.cat([probs, torch.stack(cols, 1)], 1)
