"""Stage one of two-stage NAS: train a supernet once, with checkpoints that survive a kill.

:func:`train_supernet` runs SGD with momentum under a cosine schedule; each optimiser
step trains what the sampler plans (one path, several paths, or a sandwich with
in-place distillation), gradients of a plan summed as BigNAS does.

Why a resumed run equals an uninterrupted one, bit for bit: nothing that decides a
step depends on how the process got there. The batch order of epoch ``e`` is a
permutation seeded by ``(seed, e)``, the sampler's generator of step ``g`` is seeded
by ``(seed, g)``, and a checkpoint holds weights, optimiser, scheduler, sampler state
and the torch / numpy / Python RNG states after its last step, written atomically
(a kill leaves the previous checkpoint whole). Resuming loads it and starts at the
next step of its epoch, repeating nothing.

Data-parallel training (see :mod:`hwnas.oneshot.distributed`) is the same loop: when a
process group exists the model is wrapped in DDP, each rank takes its slice of every
batch, and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.evaluators.datasets import DataSplit
from hwnas.oneshot import distributed, pinas
from hwnas.oneshot.base import OneShotSupernet
from hwnas.oneshot.checkpoint import (check_compatible, check_resumable, load_checkpoint,
                                      load_weights, save_checkpoint, supernet_meta)
from hwnas.oneshot.samplers import Sampler, Step, check_plan, make_sampler
from spaces.core import check_writable
from spaces.core.errors import Incompatible, InvalidOption

log = logging.getLogger(__name__)

#: objectives that draw their own architectures uniformly (single process), and how
UNIFORM_OBJECTIVES = {"pi": "samples its two paths uniformly",
                      "smash": "samples one architecture a step uniformly"}

StepHook = Callable[[int, list[Step], list[float]], None]
CheckpointHook = Callable[[int, Path], None]


@dataclass
class TrainResult:
    """How a call to :func:`train_supernet` went."""

    total_steps: int           # optimiser steps of the whole run
    start_step: int            # the first step this call ran (> 0 when resumed)
    last_loss: float | None    # label loss of the last step this call ran
    seconds: float
    checkpoint: Path | None


# -- determinism --------------------------------------------------------------------------
def derived_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed from ``seed`` and ``keys`` (an epoch, a step): independent streams
    that need no state to be saved."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training images' order in ``epoch``: the same on every rank and every resume."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, 0, epoch)))


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The sampler's generator for optimiser step ``step``."""
    return np.random.default_rng(derived_seed(seed, 1, step))


def rng_state() -> dict[str, Any]:
    """The global torch / CUDA / numpy / Python RNG states, as tensors and plain values
    (what a ``weights_only`` load accepts)."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": np_state["bit_generator"],
                         "state": {"key": np_state["key"].numpy().astype(np.uint32),
                                   "pos": int(np_state["pos"])},
                         "has_gauss": int(np_state["has_gauss"]),
                         "gauss": float(np_state["gauss"])})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# -- one optimiser step -------------------------------------------------------------------
def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL divergence from the teacher's soft predictions (detached) to the student's, per
    image: BigNAS's in-place distillation."""
    return F.kl_div(F.log_softmax(student, dim=1), F.softmax(teacher.detach(), dim=1),
                    reduction="batchmean")


def activate(supernet: OneShotSupernet, step: Step) -> None:
    if step.arch is not None:
        supernet.set_active(step.arch)
    else:
        supernet.set_active_paths(step.paths or ())


def run_plan(model: nn.Module, supernet: OneShotSupernet, plan: list[Step], x: torch.Tensor,
             y: torch.Tensor, ctx: distributed.DistContext) -> list[float]:
    """Forward and backward every step of ``plan``, gradients accumulating; returns each
    step's loss. Under DDP all but the last backward skip the all-reduce (``no_sync``):
    the last one averages the summed gradients once, and DDP counts a parameter used in
    any of the steps as used."""
    teacher: torch.Tensor | None = None
    losses = []
    for k, step in enumerate(plan):
        activate(supernet, step)
        quiet = ctx.active and k < len(plan) - 1
        with model.no_sync() if quiet else contextlib.nullcontext():  # type: ignore[operator]
            logits = model(x)
            if step.distill:
                assert teacher is not None  # check_plan guarantees it
                loss = distill_loss(logits, teacher)
            else:
                loss = F.cross_entropy(logits, y)
            loss.backward()
        if step.teacher:
            teacher = logits.detach()
        losses.append(float(loss.detach()))
    return losses


# -- the loop -----------------------------------------------------------------------------
def _check_inputs(supernet: OneShotSupernet, data: DataSplit, epochs: int, batch_size: int,
                  lr: float, seed: int, ctx: distributed.DistContext) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidOption(f"epochs must be a whole number of at least 1, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise InvalidOption(f"the batch size must be a whole number of at least 2, "
                            f"got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidOption(f"the seed must be a whole number of at least 0, got {seed!r}")
    if not lr > 0:
        raise InvalidOption(f"the learning rate must be positive, got {lr!r}")
    if batch_size % ctx.world_size or batch_size // ctx.world_size < 2:
        raise InvalidOption(f"the batch size {batch_size} must split into equal slices of at "
                            f"least 2 images over {ctx.world_size} processes")
    if len(data.y_train) < batch_size:
        raise InvalidOption(f"the batch size {batch_size} is larger than the "
                            f"{len(data.y_train)} training images")
    want = tuple(supernet.space.input_shape(supernet.input_size))
    if tuple(data.x_train.shape[1:]) != want:
        raise Incompatible(f"dataset images are {tuple(data.x_train.shape[1:])} but the "
                           f"supernet takes {want}")
    if data.num_classes != supernet.num_classes:
        raise Incompatible(f"the dataset has {data.num_classes} classes but the supernet's "
                           f"classifier has {supernet.num_classes}")


def train_supernet(supernet: OneShotSupernet, data: DataSplit, sampler: Sampler | str,
                   epochs: int, batch_size: int = 64, lr: float = 0.05, seed: int = 0, *,
                   momentum: float = 0.9, weight_decay: float = 4e-5, nesterov: bool = True,
                   grad_clip: float | None = None, sampler_options: Mapping[str, Any] | None = None,
                   checkpoint: str | Path | None = None, resume: bool = False,
                   every_steps: int | None = None, on_step: StepHook | None = None,
                   on_checkpoint: CheckpointHook | None = None, objective: str = "labels",
                   objective_options: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``supernet`` in place on ``data.x_train`` for ``epochs`` epochs.

    ``sampler`` is a :class:`Sampler` or a name in :data:`~hwnas.oneshot.samplers.SAMPLERS`
    (built with ``sampler_options``). ``batch_size`` is global (split over the ranks of a
    data-parallel run); an epoch is ``len(train) // batch_size`` full batches. With
    ``checkpoint`` a checkpoint is written atomically every ``every_steps`` steps, at the
    end of every epoch and at the end; ``resume`` continues from it when it exists
    (refused if it was written for another network, dataset or setting). ``on_step(step,
    plan, losses)`` runs after every optimiser step and ``on_checkpoint(steps_done,
    path)`` after every checkpoint written. Under torchrun (WORLD_SIZE > 1 in the
    environment) or in a process group already joined, it trains data-parallel. A fresh
    run seeds torch, numpy and Python's ``random`` from ``seed``; a resumed one restores
    their states from the checkpoint.

    ``objective`` "labels" trains on cross-entropy (and distillation) of the sampler's
    plan; "pi" is Pi-NAS (:mod:`hwnas.oneshot.pinas`): no labels, two uniformly sampled
    paths on two views agreeing with a mean teacher (``objective_options``: momentum,
    temperature, in_batch), the teacher EMA-updated after each optimiser step and saved
    in the checkpoint. "smash" is SMASH (:mod:`hwnas.oneshot.smash`): a hypernetwork
    generates the supernet's weight tensors from each step's uniformly sampled
    architecture and is trained through them, with the supernet's BN and bias parameters
    (``objective_options``: hidden); the hypernetwork is saved in the checkpoint as
    "hyper". "pi" and "smash" need the "uniform" sampler and a single process.
    """
    ctx = distributed.init_from_env()  # the group torchrun describes, or one already joined
    _check_inputs(supernet, data, epochs, batch_size, lr, seed, ctx)
    if objective not in ("labels", "pi", "smash"):
        raise InvalidOption(f"unknown training objective {objective!r}: choose 'labels', 'pi' "
                            f"or 'smash'")
    if objective == "labels" and objective_options:
        raise InvalidOption("objective options go with the 'pi' or 'smash' objective, not "
                            "'labels'")
    pi = pinas.pi_options(objective_options) if objective == "pi" else None
    sm = None
    if objective == "smash":
        from hwnas.oneshot import smash

        sm = smash.smash_options(supernet.space, objective_options)  # NoSupernet: no SMASH
    if objective in UNIFORM_OBJECTIVES and ctx.active:
        raise InvalidOption(f"the {objective!r} objective trains in a single process only, not "
                            f"data-parallel")
    if pi is not None and not pi["temperature"] > 0:
        raise InvalidOption(f"the pi temperature must be positive, got {pi['temperature']!r}")
    if every_steps is not None and (isinstance(every_steps, bool) or int(every_steps) < 1):
        raise InvalidOption(f"checkpoints need every_steps >= 1, got {every_steps!r}")
    if resume and checkpoint is None:
        raise InvalidOption("resume needs the checkpoint file to resume from")
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and ctx.is_main:
        check_writable(path, create_parent=True)  # before any training, not after it

    if ctx.backend == "nccl":
        supernet.to(ctx.device)
    device = next(supernet.parameters()).device
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, supernet, **dict(sampler_options or {}))
    elif sampler_options:
        raise InvalidOption("sampler options go with a sampler name, not a built sampler")
    elif sampler.supernet is not supernet:
        raise InvalidOption("the sampler was built for another supernet than the one to train")
    if objective in UNIFORM_OBJECTIVES and sampler.name != "uniform":
        raise InvalidOption(f"the {objective!r} objective {UNIFORM_OBJECTIVES[objective]}, so it "
                            f"needs the 'uniform' sampler, not {sampler.name!r}")
    sampler.bind(data)

    steps_per_epoch = len(data.y_train) // batch_size
    total = epochs * steps_per_epoch
    settings = {"sampler": sampler.describe(), "epochs": epochs, "batch_size": batch_size,
                "lr": float(lr), "momentum": float(momentum), "weight_decay": float(weight_decay),
                "nesterov": bool(nesterov), "grad_clip": grad_clip, "seed": int(seed),
                "steps_per_epoch": steps_per_epoch,
                "objective": ({"name": "pi", **pi} if pi is not None
                              else {"name": "smash", **sm} if sm is not None else "labels")}
    meta = {**supernet_meta(supernet, data.name), **settings, "total_steps": total,
            "world_size": ctx.world_size, "data": data.describe()}

    # SMASH trains the hypernetwork and the supernet's non-generated parameters; the
    # generated tensors keep their initial values (the hypernetwork's heads start there)
    hyper = smash.HyperNetwork(supernet, sm["hidden"]) if sm is not None else None
    trained = (hyper.trained_parameters(supernet) if hyper is not None
               else list(supernet.parameters()))
    optimizer = torch.optim.SGD(trained, lr=lr, momentum=momentum,
                                weight_decay=weight_decay, nesterov=nesterov and momentum > 0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    teacher = pinas.MeanTeacher(supernet, pi["momentum"]) if pi is not None else None
    start = 0
    if path is not None and resume and path.exists():
        start = _resume(path, supernet, data.name, settings, optimizer, scheduler, sampler,
                        teacher, hyper)
    else:
        if resume and ctx.is_main:
            log.info("no checkpoint at %s yet: starting afresh", path)
        elif path is not None and path.exists() and ctx.is_main:
            log.warning("starting afresh: %s will be overwritten (pass resume=True to continue it)",
                        path)
        seed_everything(seed)

    def save(done: int) -> None:
        if path is None or not ctx.is_main:
            return
        state = {"model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                 "rng": rng_state(), "step": done, "epoch": done // steps_per_epoch}
        if teacher is not None:
            state["teacher"] = teacher.state_dict()
        if hyper is not None:
            state["hyper"] = hyper.state_dict()
        save_checkpoint(path, {**meta, "step": done}, state)
        log.debug("checkpoint after step %d of %d: %s", done, total, path)
        if on_checkpoint is not None:
            on_checkpoint(done, path)

    began = time.perf_counter()
    last_loss: float | None = None
    if start >= total:
        log.info("%s has finished all %d steps; nothing to train", path, total)
        return TrainResult(total, start, None, 0.0, path)
    model = distributed.wrap(supernet, ctx)
    supernet.train()
    if hyper is not None:
        hyper.train()
    log.info("training the %s supernet: %d epochs x %d steps, sampler %s, %d process(es)%s",
             supernet.space.key, epochs, steps_per_epoch, sampler.name, ctx.world_size,
             f", resumed after step {start}" if start else "")
    for epoch in range(start // steps_per_epoch, epochs):
        order = epoch_order(len(data.y_train), seed, epoch)
        epoch_losses = []
        for i in range(start % steps_per_epoch if epoch == start // steps_per_epoch else 0,
                       steps_per_epoch):
            g = epoch * steps_per_epoch + i
            idx = distributed.shard(order[i * batch_size:(i + 1) * batch_size], ctx)
            if pi is not None:  # Pi-NAS: the labels are never read
                assert teacher is not None
                x, rng = data.x_train[idx].to(device), step_rng(seed, g)
                plan = [Step(arch=supernet.space.sample(rng)) for _ in range(2)]  # paths A, B
                optimizer.zero_grad(set_to_none=True)
                loss = pinas.pi_step(supernet, teacher, x, rng, temperature=pi["temperature"],
                                     in_batch=pi["in_batch"], model=model,
                                     archs=[s.arch for s in plan])
                loss.backward()
                losses = [float(loss.detach())]
            elif hyper is not None:  # SMASH: one uniform architecture, generated weights
                x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
                plan = [Step(arch=supernet.space.sample(step_rng(seed, g)))]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(hyper(supernet, plan[0].arch, x), y)
                loss.backward()
                losses = [float(loss.detach())]
            else:
                x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
                plan = check_plan(sampler.plan(g, total, step_rng(seed, g), (x, y)))
                distributed.check_same(" | ".join(s.key() for s in plan), f"step {g}'s plan",
                                       ctx)
                optimizer.zero_grad(set_to_none=True)
                losses = run_plan(model, supernet, plan, x, y, ctx)
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(trained, grad_clip)
            optimizer.step()
            scheduler.step()
            if teacher is not None:
                teacher.update(supernet)
            last_loss = next((loss for loss, s in zip(losses, plan) if not s.distill), losses[0])
            epoch_losses.append(last_loss)
            if on_step is not None:
                on_step(g, plan, losses)
            done = g + 1
            if (every_steps and done % every_steps == 0) or i == steps_per_epoch - 1:
                save(done)
        log.info("epoch %d/%d: label loss %.4f, lr %.4g, %.1f s", epoch + 1, epochs,
                 float(np.mean(epoch_losses)) if epoch_losses else math.nan,
                 scheduler.get_last_lr()[0], time.perf_counter() - began)
    supernet.eval()
    if hyper is not None:
        hyper.eval()
    return TrainResult(total, start, last_loss, time.perf_counter() - began, path)


def _resume(path: Path, supernet: OneShotSupernet, dataset: str, settings: Mapping[str, Any],
            optimizer: torch.optim.Optimizer, scheduler: Any, sampler: Sampler,
            teacher: pinas.MeanTeacher | None = None, hyper: nn.Module | None = None) -> int:
    """Load everything a checkpoint holds; returns the number of steps it had done."""
    # on the CPU: load_state_dict copies into the parameters' device, and the RNG states
    # must be CPU tensors wherever the run trains
    meta, state = load_checkpoint(path, map_location="cpu")
    check_compatible(meta, supernet, dataset, path)
    check_resumable(meta, settings, path)  # the objective too (older checkpoints: labels)
    load_weights(supernet, state, path)
    if teacher is not None:
        teacher.load_state_dict(state["teacher"])
    if hyper is not None:
        from hwnas.oneshot.smash import load_hyper

        if "hyper" not in state:
            raise Incompatible(f"cannot resume from {path}: it holds no SMASH hypernetwork")
        load_hyper(hyper, state["hyper"], path)  # type: ignore[arg-type]
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state.get("sampler", {}))
    set_rng_state(state["rng"])
    if meta.get("world_size") != distributed.context().world_size:
        log.warning("%s was written by %s process(es), resumed by %d: batch norm now sees "
                    "other slices of each batch", path, meta.get("world_size"),
                    distributed.context().world_size)
    log.info("resuming %s after step %d", path, int(state["step"]))
    return int(state["step"])


__all__ = ["TrainResult", "activate", "derived_seed", "distill_loss", "epoch_order",
           "rng_state", "run_plan", "seed_everything", "set_rng_state", "step_rng",
           "train_supernet"]
