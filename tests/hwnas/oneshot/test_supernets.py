"""One-shot supernets (hwnas.oneshot): the extracted network is the supernet at that
architecture (outputs, structure, independence), in eval and train mode, for every
option of every decision; multi-path activation sums; spaces without one are refused."""

from __future__ import annotations

import copy
import math
import textwrap

import pytest
import torch
from torch import nn

import spaces
from hwnas.oneshot import SUPERNETS, NoSupernet, OneShotSupernet, make_supernet
from spaces import Arch, InvalidArchitecture, InvalidOption
from spaces.base import Space, IndexStrings
from spaces.arch import Decision
from spaces.darts import DartsSpace
from spaces.fbnet import FBNetSpace
from spaces.fbnetv2 import FBNetV2Space
from spaces.nao import NAOSpace
from spaces.nb201 import NB201Space, OP_NAMES

from tests.spaces.builder_sources import plain

# (space, num_classes, input_size): small settings so every check runs in seconds on 1 core.
CASES = {
    "nb201": (lambda: NB201Space(C=4, N=1), 10, 8),
    "fbnet": (lambda: FBNetSpace("cifar"), 10, 16),  # total stride 8: 2x2 before the pool
    "nao": (lambda: NAOSpace(C=4, N=1), 10, 8),
    "fbnetv2": (lambda: FBNetV2Space("tiny"), 10, 16),
    "darts": (lambda: DartsSpace(C=4, layers=3), 10, 8),
}
TOL = dict(atol=1e-5, rtol=1e-5)


def randomize(net: nn.Module, seed: int) -> None:
    """Random BN affine and running statistics, and an O(1) classifier, so that eval mode
    really tests that the statistics were copied and that logits are not all near zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features))


def covering(space: Space, extra: int = 3, seed: int = 0) -> list[Arch]:
    """Architectures that together use every option of every decision: the k-th takes
    option ``k mod len`` everywhere; plus a few random ones."""
    longest = max(len(d) for d in space.decisions)
    archs = [space.arch([k % len(d) for d in space.decisions]) for k in range(longest)]
    return archs + space.sample_many(extra, seed)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    make_space, num_classes, size = CASES[request.param]
    space = make_space()
    supernet = make_supernet(space, num_classes, size)
    randomize(supernet, 1)
    x = torch.randn(4, space.in_channels, size, size, generator=torch.Generator().manual_seed(2))
    return space, supernet, x


def test_registry_names_every_family():
    assert SUPERNETS.names() == ["darts", "fbnet", "fbnetv2", "nao", "nb201"]


def test_extract_equals_supernet_for_every_option(case):
    space, supernet, x = case
    archs = covering(space)
    used = {(i, c) for a in archs for i, c in enumerate(a.choices)}
    assert used == {(i, c) for i, d in enumerate(space.decisions) for c in range(len(d))}
    for arch in archs:
        assert supernet.set_active(arch) == arch and supernet.active == arch
        for training in (False, True):
            supernet.train(training)
            net = supernet.extract(arch)
            assert net.training is training
            reference = space.build(arch, supernet.num_classes, supernet.input_size)
            assert {k: v.shape for k, v in net.state_dict().items()} == \
                {k: v.shape for k, v in reference.state_dict().items()}
            assert type(net) is type(reference)
            with torch.no_grad():
                # train mode: both normalise with the statistics of this same batch
                torch.testing.assert_close(net(x), supernet(x), **TOL,
                                           msg=lambda m: f"{space.to_string(arch)} "
                                                         f"train={training}: {m}")
    supernet.eval()


def test_extract_is_independent_of_the_supernet(case):
    space, supernet, x = case
    supernet = copy.deepcopy(supernet).eval()
    arch = space.sample(3)
    supernet.set_active(arch)
    net = supernet.extract(arch)
    theirs = {t.data_ptr() for t in supernet.state_dict().values()}
    assert not theirs & {t.data_ptr() for t in net.state_dict().values()}
    with torch.no_grad():
        before = net(x)
        for p in supernet.parameters():
            p.add_(0.5)
        assert not torch.allclose(supernet(x), before)
        torch.testing.assert_close(net(x), before, atol=0, rtol=0)


def test_set_active_refuses_other_architectures(case):
    space, supernet, _ = case
    with pytest.raises(InvalidArchitecture):
        supernet.set_active(Arch(space.key, (len(space.decisions[0]),) + (0,) * (len(space.decisions) - 1)))
    with pytest.raises(InvalidArchitecture):
        supernet.set_active(Arch(space.key, (0,)))
    with pytest.raises(InvalidArchitecture):
        supernet.set_active(Arch("another-space", tuple(0 for _ in space.decisions)))
    with pytest.raises(InvalidArchitecture):
        supernet.extract(Arch(space.key, (0,)))


def test_nothing_runs_before_an_architecture_is_active():
    space = NB201Space(C=2, N=1)
    supernet = make_supernet(space, 10, 8)
    assert isinstance(supernet, OneShotSupernet)
    with pytest.raises(InvalidOption):
        supernet(torch.zeros(1, 3, 8, 8))
    with pytest.raises(InvalidOption):
        supernet.active


def test_defaults_and_sampling():
    space = NB201Space(C=2, N=1)
    supernet = make_supernet(space)
    assert (supernet.num_classes, supernet.input_size) == (10, 32)
    arch = supernet.sample(5)
    assert arch == space.sample(5) and supernet.active == arch


def test_builder_space_is_refused(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(textwrap.dedent(plain()))
    space = spaces.get(f"{path}:build")
    with pytest.raises(NoSupernet, match="builder function.*share no layers.*--strategy nao"):
        make_supernet(space)


class _Toy(IndexStrings, Space):
    name = "toy"
    decisions = (Decision("a", ("x", "y")),)

    def _build(self, arch, num_classes, input_size):
        return nn.Linear(1, num_classes)


def test_space_without_supernet_is_refused():
    with pytest.raises(NoSupernet, match="toy has no one-shot supernet.*--strategy nao"):
        make_supernet(_Toy())


def test_a_supernet_refuses_another_family():
    with pytest.raises(NoSupernet):
        SUPERNETS.get("nb201")(NAOSpace(C=2), 10, 8)


@pytest.mark.parametrize("name", ["nao", "fbnetv2", "darts"])
def test_single_path_supernets_refuse_paths(name):
    make_space, num_classes, size = CASES[name]
    space = make_space()
    supernet = make_supernet(space, num_classes, size)
    assert not supernet.supports_paths
    with pytest.raises(NoSupernet):
        supernet.set_active_paths([[0]] * len(space.decisions))


# ---- multi-path activation (path dropout) ---------------------------------------------------
@pytest.fixture(scope="module")
def nb201():
    torch.manual_seed(0)
    space = NB201Space(C=4, N=1)
    supernet = make_supernet(space, 10, 8).eval()
    randomize(supernet, 4)
    return space, supernet, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def test_nb201_single_paths_equal_set_active(nb201):
    space, supernet, x = nb201
    assert supernet.supports_paths
    for arch in space.sample_many(4, 7):
        supernet.set_active(arch)
        with torch.no_grad():
            single = supernet(x)
            supernet.set_active_paths([[c] for c in arch.choices])
            assert supernet.active == arch
            torch.testing.assert_close(supernet(x), single, atol=0, rtol=0)
            supernet.set_active_paths([range(len(OP_NAMES))] * len(space.decisions))
            assert not torch.allclose(supernet(x), single)
    with pytest.raises(InvalidOption):
        supernet.active  # several ops per edge: no single architecture is active


def test_nb201_kept_ops_of_an_edge_are_summed(nb201):
    space, supernet, _ = nb201
    cell = supernet.layers[0]
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    skip, conv, pool = (OP_NAMES.index(n) for n in ("skip_connect", "nor_conv_3x3", "avg_pool_3x3"))
    edge_30 = 3  # EDGES[3] == (3, 0): straight from the input to the output

    def run(ops):
        return cell(x, [() if e != edge_30 else ops for e in range(6)])

    with torch.no_grad():
        torch.testing.assert_close(run((skip, conv, pool)), run((skip,)) + run((conv,)) + run((pool,)))
        torch.testing.assert_close(run(()), torch.zeros_like(x), atol=0, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_nb201_degenerate_cells_match(nb201, training):
    """Ops fed by a zero node still run (BN of zeros is its bias), and a cell with no path
    from input to output is zeros: the builder's rules, kept by the supernet."""
    space, supernet, x = nb201
    supernet = copy.deepcopy(supernet).train(training)
    for text in ("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
                 "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|",
                 "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"):
        arch = space.from_string(text)
        supernet.set_active(arch)
        net = supernet.extract(arch)
        with torch.no_grad():
            torch.testing.assert_close(net(x), supernet(x), **TOL)


def test_keep_is_checked(nb201):
    space, supernet, _ = nb201
    for bad in ([[0]] * 5, [[5]] * 6, [[1, 1]] * 6, "012345"):
        with pytest.raises(InvalidOption):
            supernet.set_active_paths(bad)


def test_fbnet_kept_blocks_of_a_layer_are_summed():
    torch.manual_seed(0)
    space = FBNetSpace("cifar")
    supernet = make_supernet(space, 10, 8).eval()
    assert supernet.supports_paths
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    seen = []
    supernet.header.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    base = [[0]] * (len(space.decisions) - 1)
    skip = len(space.decisions[0]) - 1  # on the last layer (184 -> 352) a 1x1 projection
    with torch.no_grad():
        for last in ([skip], [3], [3, skip]):
            supernet.set_active_paths(base + [last])
            supernet(x)
    torch.testing.assert_close(seen[2], seen[0] + seen[1])
    with pytest.raises(InvalidOption):  # a layer must run at least one block
        supernet.set_active_paths(base + [[]])


def test_bn_recalibrated_in_the_supernet_equals_recalibrated_in_the_extracted_net(case):
    """The one-shot evaluator recalibrates BN inside the supernet: every BN on the active
    path (masked ones too) must take the same cumulative statistics as the extracted
    network's. (The fbnetv2 masked BN once ignored momentum=None and kept reset stats.)"""
    from hwnas.oneshot.evaluate import calibration_batches, kept_bn_stats, recalibrate_bn

    space, supernet, x = case
    batches = calibration_batches(torch.randn(48, *x.shape[1:],
                                              generator=torch.Generator().manual_seed(3)), 3, 16)
    for arch in space.sample_many(2, 5):
        supernet.set_active(arch)
        alone = supernet.extract(arch)
        recalibrate_bn(alone, batches)
        with kept_bn_stats(supernet):
            recalibrate_bn(supernet, batches)
            with torch.no_grad():
                shared = supernet(x)
        with torch.no_grad():
            torch.testing.assert_close(shared, alone.eval()(x), atol=1e-4, rtol=1e-4)
