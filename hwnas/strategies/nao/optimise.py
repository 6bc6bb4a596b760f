"""NAO's optimisation step: move embeddings up the gradient of predicted reward, decode.

The reward ascended is ``quality_pred - weight * latency_loss(cost_pred, budget)``
(either term absent when the search has no such objective). Following NAO,
the step is taken on the encoder's per-position states, which are then
re-normalised and re-pooled, so the decoder sees a consistent (memory,
embedding) pair; the gradient is computed once per seed and the step size
grows, ``eta, 2 eta, 3 eta, ...``, until the decoded architecture is one the
search has not seen (NAO's ``predict_step_size += 1`` loop). Unlike NAO the
gradient is first normalised (see :func:`direction`). Where a space rule
rejects a decoded sequence, one position is switched to its runner-up option,
least confident first, until the space accepts it (else that step gives nothing).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Collection, Sequence

import torch

from hwnas.strategies.nao.data import Scaler, token_matrix, tokens_to_archs
from hwnas.strategies.nao.errors import BadOption, EmptyPopulation
from hwnas.strategies.nao.model import NAOModel
from spaces import Arch, Space

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


class BudgetOutOfRange(UserWarning):
    """A latency budget lies outside the latencies the cost head was trained on."""


def make_score(quality: int | None, cost: int | None, scaler: Scaler | None = None,
               budget: float | None = None, weight: float = 1.0, form: str = "hinge",
               warn: bool = True) -> ScoreFn:
    """The reward on scaled head outputs ``(batch, targets) -> (batch,)``.

    ``quality``/``cost`` are head indices (None when absent). With a cost head and
    a budget the cost enters through :func:`latency.loss.latency_loss` on the
    prediction mapped back to raw units (ms, MACs); with a cost head and no
    budget it is the scaled prediction itself (minimised). A budget outside
    the trained range is allowed but warned about (``warn``): the head
    extrapolates there. The strategy warns for the user's budgets only; its own
    "20% faster than the fastest seen" budgets are below the range on purpose.
    """
    if quality is None and cost is None:
        raise BadOption("the NAO reward needs a quality head, a cost head, or both")
    if cost is not None and budget is not None:
        if scaler is None:
            raise BadOption("a cost budget needs the cost head's scaler to map predictions back")
        if warn and not scaler.low <= budget <= scaler.high:
            warnings.warn(f"budget {budget:g} is outside the range the cost head was trained on "
                          f"({scaler.low:g} to {scaler.high:g}); its predictions there are "
                          f"extrapolations", BudgetOutOfRange, stacklevel=2)
        from latency.loss import latency_loss

    def score(preds: torch.Tensor) -> torch.Tensor:
        total = preds[:, quality] if quality is not None else torch.zeros(len(preds))
        if cost is not None:
            if budget is None:
                total = total - weight * preds[:, cost]
            else:
                total = total - weight * latency_loss(scaler.inverse(preds[:, cost]), budget, form)
        return total

    return score


Overshoot = Callable[[torch.Tensor], torch.Tensor]


def make_overshoot(cost: int, scaler: Scaler, budget: float) -> Overshoot:
    """``(batch, targets)`` scaled predictions -> (batch,) predicted cost / ``budget`` - 1
    (<= 0: within the budget)."""
    def overshoot(preds: torch.Tensor) -> torch.Tensor:
        return scaler.inverse(preds[:, cost]) / budget - 1.0

    return overshoot


def gradient(model: NAOModel, tokens: torch.Tensor, score: ScoreFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder states of ``tokens`` and d(score)/d(states), one row per sequence."""
    model.eval()
    with torch.no_grad():
        states, _ = model.encode(tokens)
    states = states.detach().requires_grad_(True)
    value = score(model.predict_states(states)).sum()
    (grad,) = torch.autograd.grad(value, states)
    return states.detach(), grad


def direction(grad: torch.Tensor) -> torch.Tensor:
    """The gradient scaled to a root-mean-square of 1 per position, per sequence.

    NAO steps along the raw gradient, whose size depends on the heads' scale and
    on how far training has gone; normalised, a step ``eta`` moves each (unit)
    state by about ``eta``, so one step schedule fits every space and iteration.
    A zero gradient (the reward is flat there) stays zero.
    """
    rms = grad.pow(2).sum(dim=-1).mean(dim=-1).sqrt()
    return grad / rms.clamp_min(1e-12)[:, None, None]


def moved_predictions(model: NAOModel, states: torch.Tensor, grad: torch.Tensor,
                      eta: float) -> torch.Tensor:
    """Scaled head predictions after one step of size ``eta`` (for checks and selection)."""
    with torch.no_grad():
        return model.predict_states(states + eta * grad)


def repair(space: Space, tokens: torch.Tensor, log_probs: torch.Tensor) -> Arch | None:
    """A valid arch from one decoded row: as decoded if the space accepts it, else the
    first accepted single switch of a position to its runner-up option, least
    confident position first (the decoder's next-best reading); None if none is."""
    (arch,) = tokens_to_archs(space, tokens.unsqueeze(0))
    if space.is_valid(arch):
        return arch
    top2 = log_probs.topk(2, dim=-1)
    margin = top2.values[:, 0] - top2.values[:, 1]
    for pos in margin.argsort().tolist():
        if not torch.isfinite(top2.values[pos, 1]):
            continue  # a one-option decision has no runner-up
        fixed = tokens.clone()
        fixed[pos] = top2.indices[pos, 1]
        (arch,) = tokens_to_archs(space, fixed.unsqueeze(0))
        if space.is_valid(arch):
            return arch
    return None


@dataclass(frozen=True)
class Proposal:
    """A new architecture decoded from ``seed``'s embedding moved by step ``eta``;
    ``index`` is the seed's position in the request (which reward moved it)."""

    arch: Arch
    seed: Arch
    eta: float
    index: int


def propose(model: NAOModel, space: Space, seeds: Sequence[Arch], score: "ScoreFn | Sequence[ScoreFn]",
            known: Collection[Arch], eta: float = 1.0, max_steps: int = 20,
            per_seed: int = 1, overshoot: "Sequence[Overshoot | None] | None" = None) -> list[Proposal]:
    """Up to ``per_seed`` new architectures per seed, the first ones met along
    ``eta, 2 eta, ...`` (NAO's increasing-step loop takes one).

    ``score`` is one reward for all seeds or one per seed (several budgets are
    walked together: one decoding per step for all of them). ``known``
    (evaluated, and any equivalents) are not new; two seeds never return the
    same architecture. Seeds whose decoding stays known up to ``max_steps *
    eta`` give fewer or none. Proposals come seed by seed, each seed's in step
    order (smallest step first).

    ``overshoot`` (one per seed, None = no budget): a new architecture counts
    only once its predicted cost (re-encoded) meets the seed's budget, so a
    tighter budget walks further; a seed short of proposals after
    ``max_steps`` takes the new ones met that came closest (smallest predicted
    overshoot), so it still gives something. Without budgets this is NAO's rule.
    """
    if not seeds:
        raise EmptyPopulation("NAO's optimisation step needs at least one seed architecture")
    if eta <= 0 or max_steps < 1 or per_seed < 1:
        raise BadOption(f"NAO needs a positive step size, at least one step and one proposal "
                        f"per seed, got {eta}, {max_steps} and {per_seed}")
    scores = [score] * len(seeds) if callable(score) else list(score)
    if len(scores) != len(seeds):
        raise BadOption(f"got {len(scores)} rewards for {len(seeds)} seeds")
    tokens = token_matrix(space, list(seeds))
    states = torch.empty(0)
    grads = []
    for fn in dict.fromkeys(scores):  # one backward pass per distinct reward
        rows = [i for i, f in enumerate(scores) if f is fn]
        st, g = gradient(model, tokens[rows], fn)
        if not len(states):
            states = torch.zeros(len(seeds), *st.shape[1:])
            grads = torch.zeros_like(states)
        states[rows], grads[rows] = st, direction(g)
    checks = list(overshoot) if overshoot is not None else [None] * len(seeds)
    if len(checks) != len(seeds):
        raise BadOption(f"got {len(checks)} budget checks for {len(seeds)} seeds")
    taken = set(known)
    found: list[list[Proposal]] = [[] for _ in seeds]
    closest: list[list[tuple[float, int, Proposal]]] = [[] for _ in seeds]  # over budget
    for k in range(1, max_steps + 1):
        todo = [i for i in range(len(seeds)) if len(found[i]) < per_seed]
        if not todo:
            break
        step = eta * k
        decoded, log_probs = model.decode_states(states[todo] + step * grads[todo])
        new = {i: a for i, a in ((i, repair(space, decoded[row], log_probs[row]))
                                 for row, i in enumerate(todo)) if a is not None and a not in taken}
        checked = [i for i in new if checks[i] is not None]
        if checked:
            over = model.predict(token_matrix(space, [new[i] for i in checked]))
            for row, i in enumerate(checked):
                value = float(checks[i](over[row:row + 1])[0])
                if value > 0:
                    closest[i].append((value, k, Proposal(new.pop(i), seeds[i], step, i)))
        for i, arch in new.items():
            if arch not in taken:  # two seeds may decode the same arch in one step
                taken.add(arch)
                found[i].append(Proposal(arch, seeds[i], step, i))
    for i in range(len(seeds)):  # budget never met: the closest new ones
        for _, _, prop in sorted(closest[i], key=lambda c: c[:2]):
            if len(found[i]) < per_seed and prop.arch not in taken:
                taken.add(prop.arch)
                found[i].append(prop)
    return [p for props in found for p in props]
