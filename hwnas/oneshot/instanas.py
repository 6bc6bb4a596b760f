"""InstaNAS: an architecture per input, chosen by a small controller that looks at the image.

Cheng et al., "InstaNAS: Instance-aware Neural Architecture Search", AAAI 2020. Instead
of one architecture for every image, the search forms a *distribution* of architectures
and a controller, trained by policy gradient with a reward of correctness and latency,
picks one per image at inference: an easy image takes a cheap path, a hard one an
accurate path. The paper reports 48.9% lower latency than MobileNetV2 on CIFAR-10 at
equal accuracy.

What is kept:

* the one-shot supernet as the source of every path (its weights inherited, BN
  recalibrated per path, as every one-shot evaluation here; the pipeline fine-tunes
  each path ``--finetune-epochs`` as it does every network it ships);
* a per-image controller -- a small CNN on a downsampled copy of the input -- whose
  softmax picks the path; trained by REINFORCE (moving-average baseline, entropy bonus)
  on a reward of the chosen path's correctness on that image and its latency as the
  device's predictor sees it (the paper's reward couples accuracy and latency too);
* inference = controller, then the chosen path; deterministic (argmax) in eval mode.

What is simplified, and why:

* the controller chooses among ``K`` architectures, not option by option. The paper's
  controller samples every block's options, so nearly every image gets its own
  architecture during training; deployment then needs one graph per architecture used.
  Here the ``K`` candidates are taken from the supernet's searched accuracy x latency
  front, spread over its latency range (:func:`choose_paths`) -- the same "distribution
  of architectures", cut to what ships (the issue's "K most used" files);
* the supernet is frozen while the controller learns (the paper fine-tunes the one-shot
  model jointly), so the reward of every (image, path) pair is a table computed once
  (:func:`correctness`) and the controller trains in seconds;
* the reward is ``(1 if correct else -wrong_penalty) - latency_weight * cost_k``, with
  ``cost_k`` the path's predicted latency over the slowest path's (the paper multiplies
  an accuracy term by a latency term; a sum keeps "wrong" always worse than "right"
  whatever the latency, and ``latency_weight`` is the one knob between them).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spaces import Arch
from spaces.core.errors import InvalidOption

if TYPE_CHECKING:
    from hwnas.evaluators.datasets import DataSplit

log = logging.getLogger(__name__)


# -- which paths ------------------------------------------------------------------------------
def front_of(accuracy: Mapping[Arch, float], latency_ms: Mapping[Arch, float]) -> list[Arch]:
    """The architectures no other one beats in both accuracy (higher) and latency (lower),
    fastest first."""
    archs = sorted((a for a in accuracy if a in latency_ms),
                   key=lambda a: (latency_ms[a], -accuracy[a]))
    front: list[Arch] = []
    for arch in archs:
        if not front or accuracy[arch] > accuracy[front[-1]]:
            front.append(arch)
    return front


def choose_paths(accuracy: Mapping[Arch, float], latency_ms: Mapping[Arch, float],
                 k: int) -> list[Arch]:
    """``k`` architectures of the accuracy x latency front, spread evenly over its latency
    range: always the fastest and the most accurate, fastest first. Fewer when the front
    is smaller than ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InvalidOption(f"InstaNAS needs at least 2 paths to choose between, got {k!r}")
    front = front_of(accuracy, latency_ms)
    if len(front) < 2:
        raise InvalidOption(f"the searched front holds {len(front)} architecture(s): InstaNAS "
                            f"needs at least 2 of different latency to choose between")
    if len(front) <= k:
        return front
    lo, hi = latency_ms[front[0]], latency_ms[front[-1]]
    chosen: list[Arch] = []
    for target in np.linspace(lo, hi, k):
        pool = [a for a in front if a not in chosen]
        chosen.append(min(pool, key=lambda a: abs(latency_ms[a] - target)))
    return sorted(chosen, key=lambda a: latency_ms[a])


def path_network(supernet: nn.Module, arch: Arch, data: "DataSplit", finetune_epochs: int,
                 input_size: int, seed: int = 0) -> tuple[nn.Module, float]:
    """``arch`` with the supernet's weights as a run ships it -- fine-tuned
    ``finetune_epochs`` (BN recalibrated when 0) -- in eval mode, and its validation
    accuracy (%)."""
    from hwnas.oneshot.evaluate import recalibrated_accuracy

    net = supernet.extract(arch).cpu()
    if finetune_epochs:
        from hwnas.export_train import finetune_for_export

        tuned = finetune_for_export(supernet.space, net.train(), data, finetune_epochs,
                                    source="inherited from the supernet", input_size=input_size,
                                    seed=seed)
        return tuned.module.eval(), float(tuned.accuracy)
    accuracy = recalibrated_accuracy(net, data, seed=seed)
    return net.eval(), accuracy


# -- the controller ---------------------------------------------------------------------------
class InstanceController(nn.Module):
    """A small CNN on a ``low_res`` x ``low_res`` copy of the (preprocessed) input that
    scores the ``paths`` candidates; average pooling does the downsampling inside the
    graph, so the exported controller takes the same input as the paths."""

    def __init__(self, in_channels: int, input_size: int, paths: int, width: int = 16,
                 low_res: int = 8, seed: int | None = None) -> None:
        super().__init__()
        if seed is None:
            self._build(in_channels, input_size, paths, width, low_res)
            return
        with torch.random.fork_rng(devices=[]):  # a seeded init leaves the global RNG alone
            torch.manual_seed(seed)
            self._build(in_channels, input_size, paths, width, low_res)

    def _build(self, in_channels: int, input_size: int, paths: int, width: int,
               low_res: int) -> None:
        if paths < 2:
            raise InvalidOption(f"the controller chooses between at least 2 paths, got {paths}")
        factor = max(1, int(input_size) // int(low_res))
        self.paths, self.input_size, self.factor = int(paths), int(input_size), factor
        self.features = nn.Sequential(
            nn.AvgPool2d(factor) if factor > 1 else nn.Identity(),
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the paths, one row per image."""
        return self.head(self.features(x))

    @torch.no_grad()
    def decide(self, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """The path of each image: the argmax, in eval mode (deterministic)."""
        was = self.training
        self.eval()
        try:
            return np.concatenate([self(x[i:i + batch_size]).argmax(1).cpu().numpy()
                                   for i in range(0, len(x), batch_size)]).astype(int)
        finally:
            self.train(was)


# -- rewards from the frozen paths ------------------------------------------------------------
@torch.no_grad()
def predictions(nets: Sequence[nn.Module], x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Each net's predicted class for each image, ``[N, K]`` (nets in eval mode)."""
    out = np.zeros((len(x), len(nets)), dtype=int)
    for k, net in enumerate(nets):
        net.eval()
        for i in range(0, len(x), batch_size):
            out[i:i + batch_size, k] = net(x[i:i + batch_size]).argmax(1).cpu().numpy()
    return out


def correctness(nets: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                batch_size: int = 512) -> np.ndarray:
    """``[N, K]``: whether path ``k`` classifies image ``i`` correctly."""
    return predictions(nets, x, batch_size) == y.cpu().numpy()[:, None]


@dataclass
class ControllerConfig:
    """How the controller learns (see the module docstring for the reward)."""

    latency_weight: float = 0.5   # lambda: reward lost per unit of relative latency
    wrong_penalty: float = 1.0    # gamma: reward of a wrong answer is -gamma
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    entropy_weight: float = 0.01
    baseline_decay: float = 0.9
    width: int = 16
    low_res: int = 8
    seed: int = 0

    def check(self) -> "ControllerConfig":
        if not self.latency_weight >= 0:
            raise InvalidOption(f"the InstaNAS latency weight cannot be negative, got "
                                f"{self.latency_weight!r}")
        if not self.wrong_penalty >= 0:
            raise InvalidOption(f"the InstaNAS wrong-answer penalty cannot be negative, got "
                                f"{self.wrong_penalty!r}")
        if int(self.epochs) < 1 or int(self.batch_size) < 2 or not self.lr > 0:
            raise InvalidOption("the controller needs epochs >= 1, batch size >= 2 and a "
                                "positive learning rate")
        return self


def reward_table(correct: np.ndarray, cost: Sequence[float], config: ControllerConfig) -> np.ndarray:
    """``[N, K]`` reward of sending image ``i`` down path ``k``; ``cost`` is each path's
    latency relative to the slowest (in (0, 1])."""
    cost = np.asarray(cost, dtype=float)
    if correct.ndim != 2 or correct.shape[1] != len(cost):
        raise InvalidOption(f"the correctness table has {correct.shape} entries for "
                            f"{len(cost)} paths")
    hit = np.where(correct, 1.0, -float(config.wrong_penalty))
    return hit - float(config.latency_weight) * cost[None, :]


@dataclass
class ControllerHistory:
    """Per epoch: mean sampled reward, mean policy entropy, share of each path sampled."""

    reward: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    usage: list[list[float]] = field(default_factory=list)


def train_controller(controller: InstanceController, x: torch.Tensor, rewards: np.ndarray,
                     config: ControllerConfig) -> ControllerHistory:
    """REINFORCE on the reward table: per image, sample a path from the controller's
    softmax, reward ``rewards[i, path]`` minus a moving-average baseline, plus an entropy
    bonus. Seeded: the same inputs give the same controller."""
    config.check()
    if len(x) != len(rewards) or rewards.shape[1] != controller.paths:
        raise InvalidOption(f"{len(x)} images with a reward table of shape {rewards.shape} for "
                            f"{controller.paths} paths")
    torch.manual_seed(config.seed)
    order_gen = torch.Generator().manual_seed(config.seed)
    table = torch.as_tensor(rewards, dtype=torch.float32)
    optimizer = torch.optim.Adam(controller.parameters(), lr=config.lr)
    baseline: float | None = None
    history = ControllerHistory()
    controller.train()
    for _ in range(int(config.epochs)):
        order = torch.randperm(len(x), generator=order_gen)
        sums = np.zeros(3)
        counts = np.zeros(controller.paths)
        for start in range(0, len(x) - 1, int(config.batch_size)):
            idx = order[start:start + int(config.batch_size)]
            if len(idx) < 2:  # BN cannot take statistics of one image
                continue
            logits = controller(x[idx])
            dist = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            reward = table[idx, action]
            mean = float(reward.mean())
            baseline = mean if baseline is None else (
                config.baseline_decay * baseline + (1 - config.baseline_decay) * mean)
            entropy = dist.entropy()
            loss = (-(reward - baseline) * dist.log_prob(action)).mean() \
                - config.entropy_weight * entropy.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += (float(reward.sum()), float(entropy.detach().sum()), len(idx))
            counts += np.bincount(action.numpy(), minlength=controller.paths)
        history.reward.append(float(sums[0] / max(1, sums[2])))
        history.entropy.append(float(sums[1] / max(1, sums[2])))
        history.usage.append((counts / max(1, counts.sum())).tolist())
        log.debug("controller epoch %d: reward %.3f, entropy %.3f, usage %s", len(history.reward),
                  history.reward[-1], history.entropy[-1],
                  " ".join(f"{u:.2f}" for u in history.usage[-1]))
    controller.eval()
    return history


@dataclass
class Routing:
    """What the controller does on a labelled set."""

    accuracy: float               # % of images whose chosen path is right
    usage: list[float]            # share of images sent down each path
    paths: np.ndarray             # the chosen path per image

    def mean_latency(self, path_ms: Sequence[float], controller_ms: float) -> float:
        return mean_latency(self.usage, path_ms, controller_ms)


def mean_latency(usage: Sequence[float], path_ms: Sequence[float], controller_ms: float) -> float:
    """Mean latency per image: the controller always runs, then one path (``usage``: the
    share of images each path takes)."""
    return float(controller_ms) + float(np.dot(np.asarray(usage, dtype=float),
                                               np.asarray(path_ms, dtype=float)))


def route(controller: InstanceController, x: torch.Tensor, correct: np.ndarray) -> Routing:
    """Accuracy and path usage of the controller's (argmax) choices on ``x``."""
    chosen = controller.decide(x)
    acc = 100.0 * float(correct[np.arange(len(chosen)), chosen].mean()) if len(chosen) else 0.0
    usage = np.bincount(chosen, minlength=controller.paths) / max(1, len(chosen))
    return Routing(acc, usage.tolist(), chosen)


def best_fixed(accuracies: Sequence[float], latencies_ms: Sequence[float],
               target_accuracy: float) -> int:
    """The path a user without InstaNAS would ship to reach ``target_accuracy``: the fastest
    single path at least that accurate, else (none reaches it) the most accurate one."""
    acc, ms = np.asarray(accuracies, dtype=float), np.asarray(latencies_ms, dtype=float)
    reaching = np.flatnonzero(acc >= target_accuracy - 1e-9)
    if len(reaching):
        return int(reaching[np.argmin(ms[reaching])])
    return int(np.argmax(acc))


def mixture_latency(accuracies: Sequence[float], latencies_ms: Sequence[float],
                    target_accuracy: float) -> float | None:
    """The least mean latency at which fixed paths, mixed *at random* (image-blind: path
    ``i`` for a share ``p`` of the images, path ``j`` for the rest), reach
    ``target_accuracy``; None above the best path. A controller beats this only if its
    choice per image carries information -- the baseline that isolates instance-awareness."""
    acc, ms = np.asarray(accuracies, dtype=float), np.asarray(latencies_ms, dtype=float)
    best: float | None = None
    for i in range(len(acc)):
        for j in range(len(acc)):
            if acc[j] < target_accuracy - 1e-9:
                continue
            if acc[i] >= target_accuracy - 1e-9 or acc[j] == acc[i]:
                cost = ms[j] if acc[i] < target_accuracy - 1e-9 else min(ms[i], ms[j])
            else:
                share = (target_accuracy - acc[i]) / (acc[j] - acc[i])  # of path j
                cost = (1 - share) * ms[i] + share * ms[j]
            best = cost if best is None else min(best, float(cost))
    return best


def config_dict(config: ControllerConfig) -> dict[str, float]:
    return asdict(config)


__all__ = ["ControllerConfig", "ControllerHistory", "InstanceController", "Routing",
           "best_fixed", "choose_paths", "config_dict", "correctness", "front_of",
           "mean_latency", "mixture_latency", "path_network", "predictions", "reward_table", "route", "train_controller"]
