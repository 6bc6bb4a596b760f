"""Pi-NAS: the cross-path loss is zero exactly when online and teacher agree with no
negatives, the mean teacher follows the EMA rule, and training with ``objective="pi"``
changes the weights, never reads a label and resumes exactly after a crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwnas.oneshot.checkpoint import load_checkpoint
from hwnas.oneshot.pinas import MeanTeacher, augment, features, pi_loss, pi_step
from hwnas.oneshot.training import train_supernet
from spaces.core.errors import InvalidOption
from tests.hwnas.oneshot.tiny_supernet import digits, tiny

EPOCHS, BATCH = 2, 16  # 64 training digits: 4 steps an epoch, 8 in all


@pytest.fixture(scope="module")
def data():
    return digits()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Crash(Exception):
    """Stands in for a kill in the in-process resume test."""


def pi_run(data, seed: int = 0, **kwargs) -> dict:
    supernet = tiny(seed=seed)
    train_supernet(supernet, data, "uniform", epochs=EPOCHS, batch_size=BATCH, seed=seed,
                   objective="pi", **kwargs)
    return supernet.state_dict()


# -- the loss ---------------------------------------------------------------------------------
def test_loss_is_zero_for_identical_views_and_paths_and_positive_otherwise(data):
    supernet = tiny()
    supernet.set_active(supernet.space.sample(0))
    z = features(supernet, data.x_train[:8])  # one path, one view: online == teacher
    zero = pi_loss(z, z, z.detach(), z.detach(), None, 0.2)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)

    other = F.normalize(torch.randn_like(z), dim=1)
    assert pi_loss(z, z, other, other, None, 0.2).item() > 1e-3  # paths/views disagree
    assert pi_loss(z, z, z, z, other, 0.2).item() > 1e-3          # agree, but negatives
    assert pi_loss(z, z, z, z, None, 0.2, in_batch=True).item() > 1e-3  # other images

    # a one-image batch has no in-batch negatives: zero again
    one = z[:1]
    assert pi_loss(one, one, one, one, None, 0.2, in_batch=True).item() == pytest.approx(
        0.0, abs=1e-6)


def test_loss_gradient_reaches_only_the_online_embeddings():
    q = F.normalize(torch.randn(4, 10), dim=1).requires_grad_()
    k = F.normalize(torch.randn(4, 10), dim=1).requires_grad_()
    pi_loss(q, q, k, k, None, 0.2, in_batch=True).backward()
    assert q.grad is not None and k.grad is None


def test_augment_is_deterministic_given_the_generator(data):
    x = data.x_train[:4]
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


# -- the mean teacher -------------------------------------------------------------------------
def test_mean_teacher_moves_by_the_momentum_rule():
    online = tiny(seed=0)
    teacher = MeanTeacher(online, momentum=0.9)
    before = {k: v.clone() for k, v in teacher.net.state_dict().items()}
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    teacher.update(online)
    after, now = teacher.net.state_dict(), online.state_dict()
    for name, p in online.named_parameters():
        assert torch.allclose(after[name], 0.9 * before[name] + 0.1 * now[name], atol=1e-6)
        assert not torch.equal(after[name], before[name])
    assert not any(p.requires_grad for p in teacher.net.parameters())
    again = MeanTeacher(tiny(seed=4), momentum=0.5)
    again.load_state_dict(teacher.state_dict())
    assert same_weights(again.net.state_dict(), teacher.net.state_dict())
    assert again.momentum == 0.9
    with pytest.raises(InvalidOption):
        MeanTeacher(online, momentum=1.0)


def test_pi_step_gives_a_finite_positive_loss_with_gradients(data):
    supernet = tiny()
    teacher = MeanTeacher(supernet)
    loss = pi_step(supernet, teacher, data.x_train[:BATCH], np.random.default_rng(0))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in supernet.parameters())
    assert all(p.grad is None for p in teacher.net.parameters())


# -- training ---------------------------------------------------------------------------------
def test_pi_training_changes_the_weights_and_never_reads_labels(data):
    start = tiny().state_dict()
    losses = []
    real = pi_run(data, on_step=lambda g, plan, l: losses.append((g, len(plan), l)))
    assert not same_weights(real, start)
    assert [g for g, _, _ in losses] == list(range(EPOCHS * 4))
    assert all(n == 2 and np.isfinite(l[0]) for _, n, l in losses)  # two paths a step
    no_labels = replace(data, y_train=torch.full_like(data.y_train, -1))
    shuffled = replace(data, y_train=data.y_train[torch.randperm(len(data.y_train))])
    assert same_weights(pi_run(no_labels), real)
    assert same_weights(pi_run(shuffled), real)


def test_pi_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, data):
    ckpt = tmp_path / "pi.ckpt"

    def crash(done: int, path: Path) -> None:
        if done == 5:
            raise Crash

    with pytest.raises(Crash):
        pi_run(data, checkpoint=ckpt, every_steps=5, on_checkpoint=crash)
    meta, state = load_checkpoint(ckpt)
    assert meta["objective"]["name"] == "pi" and "teacher" in state
    torch.manual_seed(123)  # the resumed process starts with other RNG states
    supernet = tiny(seed=99)  # and other initial weights: all of it comes from the file
    seen = []
    result = train_supernet(supernet, data, "uniform", epochs=EPOCHS, batch_size=BATCH,
                            checkpoint=ckpt, every_steps=5, resume=True, objective="pi",
                            on_step=lambda g, plan, losses: seen.append(g))
    assert result.start_step == 5 and seen == [5, 6, 7]
    assert same_weights(supernet.state_dict(), pi_run(data))


def test_resume_with_another_objective_is_refused(tmp_path, data):
    ckpt = tmp_path / "labels.ckpt"
    train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, checkpoint=ckpt)
    with pytest.raises(InvalidOption, match="objective"):
        train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, checkpoint=ckpt,
                       resume=True, objective="pi")


def test_bad_objectives_are_refused(data):
    with pytest.raises(InvalidOption, match="objective") as info:
        train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, objective="nope")
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidOption, match="uniform"):
        train_supernet(tiny(), data, "sandwich", epochs=1, batch_size=BATCH, objective="pi")
    with pytest.raises(InvalidOption, match="unknown option"):
        train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, objective="pi",
                       objective_options={"tau": 1})
