"""The fbnetv2 space: decisions, strings, nested widths, networks and their MACs."""

import itertools
import math

import numpy as np
import pytest
import torch

import spaces
from spaces import Arch, InvalidArchitecture, UnknownName
from spaces.fbnetv2 import BLOCK_CHOICES, PRESETS, SKIP, BlockChoice, FBNetV2Space, Preset, StageSpec
from spaces.fbnetv2_blocks import InvertedResidual, Resize


@pytest.fixture(scope="module")
def tiny():
    return FBNetV2Space()


@pytest.fixture(scope="module")
def mobile():
    return FBNetV2Space("mobile")


def _micro(monkeypatch, width_mult=1.0):
    """A space small enough to enumerate: 2 resolutions x 1 stage (4 widths, 2 blocks)."""
    monkeypatch.setitem(PRESETS, "micro", Preset(
        input_size=8, num_classes=3, resolutions=(4, 8), stem_width=8, stem_stride=1,
        stages=(StageSpec(stride=2, widths=(8, 12, 16, 24), blocks=2),), head_width=16))
    return FBNetV2Space("micro", width_mult=width_mult)


# ---- identity and decisions --------------------------------------------------------------
def test_key_names_preset_and_parameters():
    assert FBNetV2Space().key == "fbnetv2:tiny"
    assert FBNetV2Space("mobile").key == "fbnetv2:mobile"
    assert FBNetV2Space("tiny", width_mult=0.5, in_channels=1).key == "fbnetv2:tiny:w0.5:c1"
    assert spaces.get("fbnetv2", preset="mobile").key == "fbnetv2:mobile"


def test_kernels_and_expansions_widen_the_block_options_and_the_key():
    space = FBNetV2Space("tiny", kernels=(7, 3, 5), expansions=(1, 2, 4, 6))
    assert space.key == "fbnetv2:tiny:k3-5-7:e1-2-4-6"
    assert FBNetV2Space("tiny", kernels=(3, 5), expansions=(6, 3, 1)).key == "fbnetv2:tiny"
    first, second = space.stage_layout()[0].block_decisions
    assert len(space.decisions[first]) == 12 and space.decisions[second].options[-1] == SKIP
    assert space.block_choices(first)[-1] == BlockChoice(7, 6)
    arch = space.from_string("r16|c24-40-64|k7e4-skip-k3e2-k5e1-k7e6-skip")
    net = space.build(arch).eval()
    assert net(torch.randn(2, *space.input_shape())).shape == (2, 10)
    depthwise = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert [m.kernel_size[0] for m in depthwise] == [7, 3, 5, 7]
    with pytest.raises(InvalidArchitecture):  # k7 is not an option of the default space
        FBNetV2Space().from_string("r16|c24-40-64|k7e4-skip-k3e3-k5e1-k3e6-skip")


@pytest.mark.parametrize("kwargs", [{"kernels": (3, 4)}, {"kernels": ()}, {"kernels": (3, 3)},
                                    {"expansions": (0, 1)}, {"expansions": (1.5,)},
                                    {"expansions": (True,)}])
def test_bad_kernels_or_expansions_are_rejected(kwargs):
    with pytest.raises(InvalidArchitecture, match="kernels|expansions"):
        FBNetV2Space(**kwargs)


def test_bad_constructor_arguments_are_rejected():
    with pytest.raises(UnknownName, match="unknown preset 'huge'.*mobile, tiny"):
        FBNetV2Space("huge")
    with pytest.raises(InvalidArchitecture, match="width_mult"):
        FBNetV2Space(width_mult=0)
    with pytest.raises(InvalidArchitecture, match="in_channels"):
        FBNetV2Space(in_channels=0)


def test_decisions_are_resolution_then_width_and_blocks_per_stage(tiny):
    names = [d.name for d in tiny.decisions]
    assert names == ["resolution",
                     "stage1.width", "stage1.block1", "stage1.block2",
                     "stage2.width", "stage2.block1", "stage2.block2",
                     "stage3.width", "stage3.block1", "stage3.block2"]
    blocks = tuple(b.name for b in BLOCK_CHOICES)
    assert blocks == ("k3e1", "k3e3", "k3e6", "k5e1", "k5e3", "k5e6")
    for st in tiny.stage_layout():
        first, *rest = st.block_decisions
        assert tiny.decisions[first].options == blocks  # no skip: may change stride/width
        for d in rest:
            assert tiny.decisions[d].options == blocks + (SKIP,)


def test_size_is_the_product_and_matches_counts(tiny, mobile):
    # tiny: 3 resolutions, per stage 4 widths x 6 x 7 blocks.
    assert tiny.size == 3 * (4 * 6 * 7) ** 3
    assert mobile.size == math.prod(len(d) for d in mobile.decisions)
    assert len(mobile.decisions) == 1 + 6 + 1 + 3 + 4 + 4 + 4 + 4


@pytest.mark.parametrize("width_mult, widths", [(1.0, (8, 12, 16, 24)), (0.5, (4, 8, 12))])
def test_size_is_exact_by_brute_force(monkeypatch, width_mult, widths):
    space = _micro(monkeypatch, width_mult)
    assert space.stage_layout()[0].widths == widths  # at 0.5, 12 and 16 both round to 8: kept once
    every = [Arch(space.key, c) for c in itertools.product(*(range(len(d)) for d in space.decisions))]
    valid = [a for a in every if space.is_valid(a)]
    assert len(valid) == space.size == 2 * len(widths) * 6 * 7
    # No two choices name the same network: strings and resolved configs are distinct.
    assert len({space.to_string(a) for a in valid}) == space.size
    assert len({space.resolve(a) for a in valid}) == space.size


# ---- string forms --------------------------------------------------------------------------
def test_string_round_trips_for_many_samples(tiny, mobile):
    for space, n in ((tiny, 300), (mobile, 50)):
        for arch in space.sample_many(n, rng=0):
            text = space.to_string(arch)
            assert space.from_string(text) == arch
            assert space.to_string(space.from_string(text)) == text
            # The compact form (raw option indices) parses to the same architecture.
            assert space.from_string("-".join(map(str, arch.choices))) == arch


def test_string_form_reads_as_documented(tiny):
    text = "r12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip"
    arch = tiny.from_string(text)
    assert arch.choices == (1, 1, 1, 6, 1, 3, 2, 1, 5, 6)
    cfg = tiny.resolve(arch)
    assert cfg.resolution == 12 and cfg.widths == (12, 24, 32)
    assert cfg.blocks == ((BlockChoice(3, 3), None), (BlockChoice(5, 1), BlockChoice(3, 6)),
                          (BlockChoice(5, 6), None))


@pytest.mark.parametrize("text, match", [
    ("r12|c12-24-32", "expected 3 '\\|'-separated parts"),
    ("r12|c12-24-32|k3e3|x", "expected 3 '\\|'-separated parts"),
    ("12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip", "must start with 'r'"),
    ("r12|12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip", "must start with 'c'"),
    ("r20|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip", "decision 'resolution'.*'20' is not one of 8, 12, 16"),
    ("r12|c12-20-32|k3e3-skip-k5e1-k3e6-k5e6-skip", "decision 'stage2.width'.*'20'"),
    ("r12|c12-24|k3e3-skip-k5e1-k3e6-k5e6-skip", "expected 3 stage widths, got 2"),
    ("r12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6", "expected 6 blocks, got 5"),
    ("r12|c12-24-32|k3e3-skip-k7e1-k3e6-k5e6-skip", "decision 'stage2.block1'.*'k7e1'"),
    ("r12|c12-24-32|skip-skip-k5e1-k3e6-k5e6-skip", "decision 'stage1.block1'.*'skip' is not one of"),
    ("r12|c12-24-32|", "expected 6 blocks, got 1"),
    ("", "malformed string"),
    ("1-1-x", "malformed string"),
    ("1--1-1-1-1-1-1-1-1", "malformed string"),
    ("1-1-1", "expected 10 choices, got 3"),
    ("0-0-6-0-0-0-0-0-0-0", "decision 'stage1.block1'.*out of range 0..5"),
])
def test_malformed_strings_say_what_is_wrong(tiny, text, match):
    with pytest.raises(InvalidArchitecture, match=match):
        tiny.from_string(text)


def test_non_string_is_rejected(tiny):
    with pytest.raises(InvalidArchitecture, match="expected a string"):
        tiny.from_string(None)


# ---- local moves ---------------------------------------------------------------------------
def test_mutation_changes_one_decision_and_stays_valid(tiny, mobile):
    rng = np.random.default_rng(0)
    for space in (tiny, mobile):
        arch = space.sample(rng)
        for _ in range(200):
            child = space.mutate(arch, rng)
            assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1
            assert space.is_valid(child)
            arch = child


def test_every_option_is_reachable_as_a_neighbour(tiny):
    arch = tiny.sample(1)
    assert len(tiny.neighbours(arch)) == sum(len(d) - 1 for d in tiny.decisions)


# ---- layout for the supernet ---------------------------------------------------------------
@pytest.mark.parametrize("preset, width_mult", [("tiny", 1.0), ("tiny", 0.5), ("tiny", 1.5),
                                                ("mobile", 1.0), ("mobile", 0.75)])
def test_channel_options_are_nested_prefixes_of_the_widest(preset, width_mult):
    space = FBNetV2Space(preset, width_mult=width_mult)
    layout = space.stage_layout()
    covered = {space.resolution_decision}
    prev_max = space.stem_width
    for st in layout:
        assert list(st.widths) == sorted(set(st.widths))  # strictly ascending: nested masks
        assert st.max_width == st.widths[-1] and all(w % 4 == 0 and w >= 4 for w in st.widths)
        assert st.in_max_width == prev_max
        assert space.decisions[st.width_decision].name == f"{st.name}.width"
        assert space.decisions[st.width_decision].options == tuple(map(str, st.widths))
        assert [space.decisions[d].name for d in st.block_decisions] == [
            f"{st.name}.block{b + 1}" for b in range(st.num_blocks)]
        covered |= {st.width_decision, *st.block_decisions}
        prev_max = st.max_width
    assert covered == set(range(len(space.decisions)))  # every decision belongs somewhere


def test_block_choices_map_options_to_kernel_and_expansion(tiny):
    first, second = tiny.stage_layout()[1].block_decisions
    assert tiny.block_choices(first) == BLOCK_CHOICES
    assert tiny.block_choices(second) == BLOCK_CHOICES + (None,)
    assert [(b.kernel, b.expansion) for b in tiny.block_choices(first)] == [
        (3, 1), (3, 3), (3, 6), (5, 1), (5, 3), (5, 6)]
    with pytest.raises(InvalidArchitecture, match="not a block decision"):
        tiny.block_choices(tiny.stage_layout()[1].width_decision)


# ---- networks ------------------------------------------------------------------------------
def test_build_forward_for_several_samples(tiny):
    for arch in tiny.sample_many(6, rng=2):
        net = tiny.build(arch).eval()
        out = net(torch.randn(2, *tiny.input_shape()))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_build_forward_variants():
    gray = FBNetV2Space("tiny", width_mult=0.5, in_channels=1)
    arch = gray.sample(3)
    assert gray.build(arch, num_classes=4)(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    # A larger input (CIFAR at 32) is resized to the chosen resolution first.
    tiny = FBNetV2Space()
    assert tiny.build(tiny.sample(4), input_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_build_mobile_at_224(mobile):
    arch = mobile.from_string("r128|c8-16-24-48-72-112|" + "-".join(
        ["k3e1"] + ["k3e3", "skip", "k5e1"] + ["k3e1", "k5e3", "skip", "skip"] * 4))
    out = mobile.build(arch).eval()(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()


def test_structure_follows_the_choices(tiny):
    arch = tiny.from_string("r12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip")
    net = tiny.build(arch)
    blocks = [m for m in net.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 4  # two skips omitted
    assert [b.residual for b in blocks] == [False, False, True, False]  # only non-first blocks
    assert isinstance(net.resize, Resize) and net.resize.size == 12
    full = tiny.from_string("r16|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip")
    assert isinstance(tiny.build(full).resize, torch.nn.Identity)


def _conv(cin, cout, k, size, stride=1, groups=1):
    """MACs and params (conv + its BN) of one conv-BN layer, and its output size."""
    out = (size + 2 * (k // 2) - k) // stride + 1
    macs = cin // groups * cout * k * k * out * out
    return macs, cin // groups * cout * k * k + 2 * cout, out


def _block(cin, cout, k, e, size, stride):
    layers, hidden = [], cin * e
    if e != 1:
        layers.append(_conv(cin, hidden, 1, size))
    layers.append(_conv(hidden, hidden, k, size, stride, groups=hidden))
    out = layers[-1][2]
    layers.append(_conv(hidden, cout, 1, out))
    return sum(m for m, _, _ in layers), sum(p for _, p, _ in layers), out


def test_macs_and_params_of_a_hand_checked_architecture(tiny):
    arch = tiny.from_string("r12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip")
    parts = []
    m, p, s = _conv(3, 16, 3, 12)                       # stem, stride 1: 12x12
    parts.append((m, p))
    for cin, cout, k, e, stride in [(16, 12, 3, 3, 2),  # stage1.block1 -> 6x6
                                    (12, 24, 5, 1, 2),  # stage2.block1 -> 3x3
                                    (24, 24, 3, 6, 1),  # stage2.block2
                                    (24, 32, 5, 6, 1)]:  # stage3.block1
        m, p, s = _block(cin, cout, k, e, s, stride)
        parts.append((m, p))
    m, p, s = _conv(32, 128, 1, s)                      # head at 3x3
    parts.append((m, p))
    parts.append((128 * 10, 128 * 10 + 10))             # classifier
    assert s == 3
    cost = tiny.cost(arch)
    assert cost.macs == sum(m for m, _ in parts)
    assert cost.params == sum(p for _, p in parts)


def test_macs_grow_with_resolution_width_and_depth(tiny):
    for arch in tiny.sample_many(8, rng=5):
        base = tiny.cost(arch).macs
        c = arch.choices
        if c[0] < len(tiny.decisions[0]) - 1:
            assert tiny.cost(tiny.arch((c[0] + 1,) + c[1:])).macs > base
        for st in tiny.stage_layout():
            i = st.width_decision
            if c[i] < len(st.widths) - 1:
                assert tiny.cost(tiny.arch(c[:i] + (c[i] + 1,) + c[i + 1:])).macs > base
            for d in st.block_decisions[1:]:
                if tiny.block_choices(d)[c[d]] is None:
                    assert tiny.cost(tiny.arch(c[:d] + (0,) + c[d + 1:])).macs > base


def test_cost_range_of_tiny_samples_spans_an_order_of_magnitude(tiny):
    macs = [tiny.cost(a).macs for a in tiny.sample_many(100, rng=0)]
    assert max(macs) / min(macs) > 8
    assert 2e4 < min(macs) and max(macs) < 5e6  # CPU-trainable scale


def test_onnx_export_matches_torch(tiny):
    from tests.spaces.onnx_parity import ort_output

    net = tiny.build(tiny.from_string("r12|c12-24-32|k3e3-skip-k5e1-k3e6-k5e6-skip")).eval()
    x = torch.randn(1, 3, 16, 16)
    got = ort_output(net, x)
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
