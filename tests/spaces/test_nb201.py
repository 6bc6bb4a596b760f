"""NAS-Bench-201 space: official strings and indices, the built network, its published costs."""

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import torch

import spaces
from spaces import Arch, InvalidArchitecture
from spaces.nb201 import NB201Space, decode, encode

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
             "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def nats(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "nas-bench-201" / "nats_bench.csv",
                       usecols=["ArchitectureString", "CIFAR10TestAccuracy200Epochs"])


# ---- decisions, strings -------------------------------------------------------------
def test_size_decisions_and_registry(space):
    assert space.size == 15_625 == 5 ** 6
    assert [d.name for d in space.decisions] == [
        "edge_1<-0", "edge_2<-0", "edge_2<-1", "edge_3<-0", "edge_3<-1", "edge_3<-2"]
    assert all(d.options == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
               for d in space.decisions)
    assert isinstance(spaces.get("nb201"), NB201Space)
    assert spaces.get("nb201").key == "nb201"
    assert NB201Space(C=8, N=1).key == "nb201(C=8,N=1,in_channels=3)"


def test_official_string_round_trip(space):
    arch = space.from_string(EXAMPLE)
    assert arch == Arch("nb201", (3, 3, 4, 1, 3, 1))
    assert space.to_string(arch) == EXAMPLE
    assert space.from_string(f"  {EXAMPLE}\n") == arch  # surrounding whitespace is harmless
    for arch in space.sample_many(50, rng=0):
        assert space.from_string(space.to_string(arch)) == arch


@pytest.mark.parametrize("text, message", [
    (EXAMPLE.replace("avg_pool_3x3", "max_pool_3x3"), r"unknown op 'max_pool_3x3' on edge 2<-1"),
    (EXAMPLE.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), r"input 2 of node 2 must come from node 1"),
    (EXAMPLE.replace("skip_connect~2", "skip_connect~3"), r"input 3 of node 3 must come from node 2"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", r"expected 3 nodes joined by '\+', got 2"),
    (EXAMPLE + "+|none~0|", r"expected 3 nodes joined by '\+', got 4"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     r"node 2 must have 2 incoming edge\(s\), got 1"),
    (EXAMPLE.replace("|skip_connect~0|", "skip_connect~0|"), r"node 3 must be written as \|op~i\|"),
    (EXAMPLE.replace("nor_conv_3x3~1", "nor_conv_3x3-1"), r"'nor_conv_3x3-1' of node 3 is not of the form op~i"),
    ("garbage", r"expected 3 nodes"),
    ("", r"expected 3 nodes"),
])
def test_malformed_strings_say_what_is_wrong(space, text, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.from_string(text)


def test_non_string_is_rejected(space):
    with pytest.raises(InvalidArchitecture, match="expected a cell string, got int"):
        space.from_string(42)


# ---- official index -------------------------------------------------------------------
def test_index_matches_every_row_of_nats_bench(space, nats):
    strings = nats["ArchitectureString"].tolist()
    assert len(strings) == space.size
    for k, text in enumerate(strings):
        assert space.index(space.from_string(text)) == k, text
        assert space.to_string(space.from_index(k)) == text, k


def test_index_matches_help_latency_table(space, shared_data):
    table = pd.read_csv(shared_data / "help-latency" / "nasbench201_latency.csv",
                        usecols=["arch_index", "arch_str"])
    assert len(table) == space.size
    for k, text in zip(table["arch_index"], table["arch_str"]):
        assert space.index(space.from_string(text)) == k
        assert space.to_string(space.from_index(int(k))) == text


def test_index_is_a_table_not_the_base5_code(space):
    # Index 0 is not the all-none cell, and the all-none cell is not index 0: the
    # official order is the authors' enumeration, hence the bundled table.
    assert space.to_string(space.from_index(0)) == INDEX0
    assert space.index(space.from_string(ALL_NONE)) == 1651
    assert space.index(space.from_string(EXAMPLE)) == 1
    codes = [encode(space.from_index(k).choices) for k in range(space.size)]
    assert sorted(codes) == list(range(space.size)) and codes != sorted(codes)
    assert all(decode(encode(c)) == c for c in [(0,) * 6, (4,) * 6, (3, 3, 4, 1, 3, 1)])


@pytest.mark.parametrize("bad", [-1, 15_625, 2.0, "3", True])
def test_from_index_rejects_out_of_range(space, bad):
    with pytest.raises(InvalidArchitecture, match="index must be an integer in 0..15624"):
        space.from_index(bad)


def test_index_validates_its_arch(space):
    with pytest.raises(InvalidArchitecture, match="out of range"):
        space.index(Arch("nb201", (0, 0, 0, 0, 0, 5)))
    assert space.from_index(np.int64(1)) == space.from_string(EXAMPLE)


# ---- connectivity ---------------------------------------------------------------------
@pytest.mark.parametrize("text, disconnected", [
    (ALL_NONE, True),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", True),  # output gets none only
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|", True),  # node 2 is zero
    ("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|skip_connect~2|", True),  # node 1 is zero
    ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", False),  # direct skip to output
    ("|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|", False),  # 0->1->2->3
    (EXAMPLE, False),
])
def test_is_disconnected_on_known_cells(space, text, disconnected):
    assert space.is_disconnected(space.from_string(text)) is disconnected


def test_disconnected_cells_are_exactly_the_chance_level_ones(space, nats):
    # The benchmark trained every cell: outputs that are always zero give 10% on CIFAR-10.
    flags = np.array([space.is_disconnected(space.from_string(s)) for s in nats["ArchitectureString"]])
    accuracy = nats["CIFAR10TestAccuracy200Epochs"].to_numpy()
    assert flags.sum() == 341
    assert np.allclose(accuracy[flags], 10.0)
    assert accuracy[~flags].min() > 40.0


def test_near_zero_latency_cells_are_disconnected(space, shared_data):
    # HELP/HW-NAS-Bench quirk: pixel3 reports ~0 ms for some cells; all must be disconnected.
    table = pd.read_csv(shared_data / "help-latency" / "nasbench201_latency.csv",
                        usecols=["arch_str", "pixel3"])
    tiny = table.loc[table["pixel3"] < 0.1, "arch_str"]
    assert len(tiny) > 100
    assert all(space.is_disconnected(space.from_string(s)) for s in tiny)


# ---- network --------------------------------------------------------------------------
def test_build_forward_shapes_on_sampled_cells():
    small = NB201Space(C=4, N=1)
    x = torch.randn(2, 3, 8, 8)
    for arch in small.sample_many(6, rng=1) + [small.from_string(ALL_NONE)]:
        model = small.build(arch, num_classes=7, input_size=8)
        assert isinstance(model, torch.nn.Module)
        out = model(x)
        assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_network_layout_matches_the_benchmark(space):
    model = space.build(space.from_string(EXAMPLE))
    from spaces.nb201_ops import NB201Cell, ResNetReduction

    kinds = [type(m).__name__ for m in model.cells]
    assert kinds == ["NB201Cell"] * 5 + ["ResNetReduction"] + ["NB201Cell"] * 5 + ["ResNetReduction"] \
        + ["NB201Cell"] * 5
    widths = [m.conv_b[1].out_channels for m in model.cells if isinstance(m, ResNetReduction)]
    assert widths == [32, 64] and model.classifier.in_features == 64
    cell = next(m for m in model.cells if isinstance(m, NB201Cell))
    assert cell.sources == [(0,), (0, 1), (0, 1, 2)]  # no none edge in EXAMPLE
    conv = cell.edges[0][0]  # nor_conv_3x3 is ReLU -> Conv (no bias) -> BN (affine)
    assert [type(m).__name__ for m in conv] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert conv[1].bias is None and conv[2].affine
    assert NB201Space(in_channels=1).build(space.from_string(EXAMPLE)).stem[0].in_channels == 1


def test_cell_matches_its_definition_node_by_node():
    # Node j = sum_i op_ij(node i), written out by hand for EXAMPLE.
    from spaces.nb201_ops import NB201Cell

    cell = NB201Cell(["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                      "skip_connect"], channels=3).eval()
    x = torch.randn(1, 3, 6, 6)
    e = cell.edges
    n1 = e[0][0](x)
    n2 = e[1][0](x) + torch.nn.functional.avg_pool2d(n1, 3, 1, 1, count_include_pad=False)
    n3 = x + e[2][1](n1) + n2
    assert torch.allclose(cell(x), n3, atol=1e-6)


def test_disconnected_network_ignores_its_input(space):
    model = NB201Space(C=4, N=1).build(space.from_string(ALL_NONE), input_size=8).eval()
    assert torch.count_nonzero(model.cells[0](torch.randn(1, 4, 8, 8))) == 0
    # every stage starts from a zero cell output, so the logits are one constant
    a, b = model(torch.randn(1, 3, 8, 8)), model(10 * torch.randn(1, 3, 8, 8))
    assert torch.allclose(a, b)


def test_too_small_input_is_rejected(space):
    with pytest.raises(InvalidArchitecture, match="input_size must be at least 4"):
        space.build(space.from_string(EXAMPLE), input_size=2)


def test_bad_constructor_arguments_are_rejected():
    with pytest.raises(InvalidArchitecture, match="C must be a positive integer"):
        NB201Space(C=0)


def test_onnx_export_matches_torch():
    from tests.spaces.onnx_parity import ort_output

    small = NB201Space(C=4, N=1)
    # node 2 has only none inputs (a zeros_like in the graph), the rest mixes every op.
    arch = small.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|")
    model = small.build(arch, input_size=8).eval()
    x = torch.randn(2, 3, 8, 8)
    got = ort_output(model, x)
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


# ---- costs ----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _cost(text: str, input_size: int, num_classes: int) -> spaces.Cost:
    """Costs are shared by the hand-checked and the published-number tests (each is a full forward)."""
    space = NB201Space()
    return space.cost(space.from_string(text), input_size=input_size, num_classes=num_classes)


def _conv(c_in, c_out, k, hw):
    return c_in * c_out * k * k * hw * hw


# Skeleton at 32x32, 10 classes, C=16: stem, two reduction blocks (3x3, 3x3, 1x1 shortcut), classifier.
SKELETON_MACS = (_conv(3, 16, 3, 32) + _conv(16, 32, 3, 16) + _conv(32, 32, 3, 16) + _conv(16, 32, 1, 16)
                 + _conv(32, 64, 3, 8) + _conv(64, 64, 3, 8) + _conv(32, 64, 1, 8) + 64 * 10)
SKELETON_PARAMS = (3 * 16 * 9 + 2 * 16                                   # stem conv + BN
                   + 16 * 32 * 9 + 32 * 32 * 9 + 16 * 32 + 2 * 2 * 32     # reduction 1
                   + 32 * 64 * 9 + 64 * 64 * 9 + 32 * 64 + 2 * 2 * 64     # reduction 2
                   + 2 * 64 + 64 * 10 + 10)                               # head BN + classifier


def test_cost_of_hand_checked_cells():
    none = _cost(ALL_NONE, 32, 10)
    assert (none.macs, none.params) == (SKELETON_MACS, SKELETON_PARAMS) == (7_783_040, 73_306)
    # all nor_conv_3x3: six C->C 3x3 convs (+BN) per cell, 5 cells per stage at (16,32),(32,16),(64,8).
    conv3 = _cost(ALL_CONV3, 32, 10)
    cell_macs = sum(5 * 6 * _conv(c, c, 3, hw) for c, hw in ((16, 32), (32, 16), (64, 8)))
    cell_params = sum(5 * 6 * (c * c * 9 + 2 * c) for c in (16, 32, 64))
    assert conv3.macs == SKELETON_MACS + cell_macs == 220_119_680
    assert conv3.params == SKELETON_PARAMS + cell_params == 1_531_546
    # pooling and skip cost nothing in this convention
    pools = "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|avg_pool_3x3~1|skip_connect~2|"
    assert _cost(pools, 32, 10) == none


# Published NAS-Bench-201 cost_info ("flops" and "params", both in millions; FLOPs there
# are multiply-adds and include the classifier's num_classes bias additions, which
# FlopCounterMode leaves out -- hence the + num_classes below).
# * index 0 on cifar10-valid: automl/NASLib tests/test_nb201_search_space.py (cost_info copied
#   from the benchmark): flops 15.64737, params 0.129306.
# * min / max over all 15,625 cells of NAS-Bench-201-v1_1-096897 (min = any cell without
#   convs, max = all nor_conv_3x3), printed per dataset by scripts reading the benchmark:
#   cifar10-valid 7.78305 / 220.11969 FLOPs, 0.073306 / 1.531546 params;
#   cifar100 7.7889 / 220.12554, 0.079156 / 1.537396;
#   ImageNet16-120 (16x16, 120 classes) 1.9534 / 55.03756, 0.080456 / 1.538696.
PUBLISHED = [
    (INDEX0, 32, 10, 15.64737, 0.129306),
    (ALL_NONE, 32, 10, 7.78305, 0.073306),
    (ALL_CONV3, 32, 10, 220.11969, 1.531546),
    (ALL_NONE, 32, 100, 7.7889, 0.079156),
    (ALL_CONV3, 32, 100, 220.12554, 1.537396),
    (ALL_NONE, 16, 120, 1.9534, 0.080456),
    (ALL_CONV3, 16, 120, 55.03756, 1.538696),
]


@pytest.mark.parametrize("text, size, classes, flops_m, params_m", PUBLISHED)
def test_cost_matches_published_numbers(text, size, classes, flops_m, params_m):
    cost = _cost(text, size, classes)
    # Published values are printed to 1e-5 M (10 ops / 10 params); 0.5 absorbs float repr only.
    assert abs((cost.macs + classes) - flops_m * 1e6) < 0.5
    assert abs(cost.params - params_m * 1e6) < 0.5
