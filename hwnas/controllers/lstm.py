"""The recurrent controller of NAS-RL (Zoph & Le 2017), MONAS (Hsu et al. 2018) and ENAS
(Pham et al. 2018), over the decisions of any hwnas space.

One LSTM step per decision, in the space's decision order: the input is the embedding
of the previous decision's choice (a learned start token before the first), the output
a softmax over that decision's options. So the probability of an architecture is the
product of its decisions' conditional probabilities, and the controller *can* condition
each choice on the earlier ones -- whether it does is what the study "Understanding
Neural Architecture Search Techniques" (Adam & Lorraine 2019) measured
(:mod:`hwnas.controllers.reinforce` has its memory-buffer fix).

Kept from the papers: an embedding per option, one LSTM layer, a separate softmax head
per decision, ENAS's ``tanh_constant * tanh(logits / temperature)`` logit clipping
(stops the controller from saturating early). Simplified: NAS-RL's anchor-point
attention for skip connections is not needed -- every hwnas space encodes its
connections as ordinary decisions (DARTS' input indices, NB201's fixed edges).
The controller knows a space's decisions and nothing about devices or data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from spaces import Arch, Space
from spaces.core.errors import InvalidOption


@dataclass
class Rollout:
    """Architectures the controller produced or scored, with what REINFORCE needs.

    ``log_prob`` and ``entropy`` are per architecture (summed over decisions, with the
    graph attached), ``choices`` the option indices ``[n, decisions]`` and ``hidden`` the
    LSTM output ``[n, decisions + 1, hidden]``: at decision t, before its choice (so it can
    only hold choices 0..t-1), and a last one after the final choice has been fed back --
    the state that has seen the whole architecture (the study's "hidden state")."""

    archs: list[Arch]
    choices: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    hidden: torch.Tensor


class LSTMController(nn.Module):
    """An autoregressive policy over ``space``'s decisions (see the module docstring)."""

    def __init__(self, space: Space, hidden: int = 64, tanh_constant: float | None = 2.5,
                 temperature: float = 5.0) -> None:
        super().__init__()
        if hidden < 1:
            raise InvalidOption(f"the controller's hidden size must be at least 1, got {hidden}")
        if tanh_constant is not None and tanh_constant <= 0:
            raise InvalidOption(f"the tanh constant must be positive, got {tanh_constant}")
        if temperature <= 0:
            raise InvalidOption(f"the temperature must be positive, got {temperature}")
        self.space = space
        self.hidden_size = int(hidden)
        self.tanh_constant, self.temperature = tanh_constant, float(temperature)
        self.sizes = [len(d) for d in space.decisions]
        self.offsets = list(space.option_offsets)
        self.embed = nn.Embedding(space.num_options + 1, hidden)  # the last row: start token
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        for p in self.parameters():  # ENAS initialises the controller uniformly in +-0.1
            nn.init.uniform_(p, -0.1, 0.1)

    # -- the policy --------------------------------------------------------------------------
    def _logits(self, i: int, h: torch.Tensor) -> torch.Tensor:
        logits = self.heads[i](h)
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits / self.temperature)
        return logits

    def _run(self, n: int, forced: torch.Tensor | None, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass over the decisions: sampled choices (or ``forced`` ones), their summed
        log-probability and entropy, and the hidden states (see :class:`Rollout`)."""
        device = self.embed.weight.device
        h = torch.zeros(n, self.hidden_size, device=device)
        c = torch.zeros_like(h)
        token = torch.full((n,), self.space.num_options, dtype=torch.long, device=device)
        log_prob = torch.zeros(n, device=device)
        entropy = torch.zeros(n, device=device)
        choices, hiddens = [], []
        for i, offset in enumerate(self.offsets):
            h, c = self.cell(self.embed(token), (h, c))
            hiddens.append(h)
            logp = torch.log_softmax(self._logits(i, h), dim=-1)
            if forced is None:
                pick = torch.multinomial(logp.exp().detach().cpu(), 1, generator=generator)
                pick = pick.squeeze(1).to(device)
            else:
                pick = forced[:, i].to(device)
            log_prob = log_prob + logp.gather(1, pick[:, None]).squeeze(1)
            entropy = entropy - (logp.exp() * logp).sum(-1)
            choices.append(pick)
            token = pick + offset
        h, c = self.cell(self.embed(token), (h, c))  # the whole architecture seen
        hiddens.append(h)
        return torch.stack(choices, 1), log_prob, entropy, torch.stack(hiddens, 1)

    def sample(self, n: int, generator: torch.Generator | None = None, tries: int = 20) -> Rollout:
        """``n`` architectures drawn from the policy. A draw the space forbids (its rules
        beyond one option per decision) is drawn again, up to ``tries`` rounds."""
        if n < 1:
            raise InvalidOption(f"the controller samples at least 1 architecture, got {n}")
        kept: list[torch.Tensor] = []
        for _ in range(tries):
            with torch.no_grad():
                choices, *_ = self._run(n, None, generator)
            kept.extend(row for row in choices.cpu() if self.space.is_valid(
                Arch(self.space.key, tuple(row.tolist()))))
            if len(kept) >= n:
                break
        if len(kept) < n:
            raise RuntimeError(f"the controller drew {len(kept)} valid {self.space.name} "
                               f"architectures of {n} in {tries} rounds")
        return self.score_choices(torch.stack(kept[:n]))

    def score(self, archs: Sequence[Arch]) -> Rollout:
        """Log-probability, entropy and hidden states of given architectures (teacher
        forced): what REINFORCE needs for architectures sampled earlier."""
        choices = torch.tensor([self.space.validate(a).choices for a in archs], dtype=torch.long)
        return self.score_choices(choices)

    def score_choices(self, choices: torch.Tensor) -> Rollout:
        choices = choices.long()
        _, log_prob, entropy, hidden = self._run(len(choices), choices, None)
        archs = [Arch(self.space.key, tuple(row.tolist())) for row in choices.cpu()]
        return Rollout(archs, choices, log_prob, entropy, hidden)

    def decision_log_probs(self, arch: Arch) -> torch.Tensor:
        """Each decision's conditional log-probability for ``arch`` (their sum is
        ``score([arch]).log_prob``; tested)."""
        choices = torch.tensor([self.space.validate(arch).choices], dtype=torch.long)
        out = []
        with torch.no_grad():
            h = torch.zeros(1, self.hidden_size)
            c = torch.zeros_like(h)
            token = torch.tensor([self.space.num_options])
            for i, offset in enumerate(self.offsets):
                h, c = self.cell(self.embed(token), (h, c))
                logp = torch.log_softmax(self._logits(i, h), dim=-1)
                out.append(logp[0, choices[0, i]])
                token = choices[:, i] + offset
        return torch.stack(out)

    def most_likely(self) -> Arch:
        """The greedy (argmax at every decision) architecture, validated by the space."""
        with torch.no_grad():
            h = torch.zeros(1, self.hidden_size)
            c = torch.zeros_like(h)
            token = torch.tensor([self.space.num_options])
            picks = []
            for i, offset in enumerate(self.offsets):
                h, c = self.cell(self.embed(token), (h, c))
                pick = int(self._logits(i, h).argmax(-1))
                picks.append(pick)
                token = torch.tensor([pick + offset])
        return self.space.arch(picks)


__all__ = ["LSTMController", "Rollout"]
