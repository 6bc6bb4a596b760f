"""The DARTS cell space: decisions, DARTS' genotype string, the built network (shapes,
reductions, layer definitions, hand-counted MACs, published parameter count, ONNX export)."""

import collections
import math

import numpy as np
import pytest
import torch

import spaces
from spaces import Arch, InvalidArchitecture, InvalidOption
from spaces.darts import OPS, PRIMITIVES, DartsSpace, Genotype

# DARTS-V2 as published in quark0/darts cnn/genotypes.py (second-order DARTS, CIFAR-10).
V2_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
             ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
V2_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
             ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]
DARTS_V2 = (f"Genotype(normal={V2_NORMAL!r}, normal_concat=[2, 3, 4, 5], "
            f"reduce={V2_REDUCE!r}, reduce_concat=[2, 3, 4, 5])")
# Pooling only, every node reading c_{k-2} and c_{k-1}: no conv inside any cell.
POOLS = [("max_pool_3x3", 0), ("avg_pool_3x3", 1)] * 4


def genotype_string(normal=POOLS, reduce=POOLS, normal_concat="[2, 3, 4, 5]", reduce_concat="[2, 3, 4, 5]"):
    return (f"Genotype(normal={normal!r}, normal_concat={normal_concat}, "
            f"reduce={reduce!r}, reduce_concat={reduce_concat})")


@pytest.fixture(scope="module")
def darts() -> DartsSpace:
    return DartsSpace()


@pytest.fixture(scope="module")
def small() -> DartsSpace:
    return DartsSpace(C=4, layers=3)


# ---- decisions, key, options ----------------------------------------------------------
def test_decisions_follow_the_genotype_order_and_size_is_exact(darts):
    assert len(darts.decisions) == 32
    assert [d.name for d in darts.decisions[:4]] == [
        "normal.node0.input1", "normal.node0.op1", "normal.node0.input2", "normal.node0.op2"]
    assert darts.decisions[16].name == "reduce.node0.input1"
    for k, d in enumerate(darts.decisions):
        node = (k % 16) // 4
        assert len(d) == (node + 2 if k % 2 == 0 else 7)
    assert darts.decisions[14].options == ("c_{k-2}", "c_{k-1}", "node0", "node1", "node2")
    assert OPS == PRIMITIVES[1:] and PRIMITIVES[0] == "none" and len(PRIMITIVES) == 8
    # Every decision independent: the plain product, (prod_i ((i+2) * 7)^2)^2.
    assert darts.size == math.prod(len(d) for d in darts.decisions) == (14_400 * 7 ** 8) ** 2


def test_key_and_registry():
    assert isinstance(spaces.get("darts"), DartsSpace)
    assert spaces.get("darts").key == "darts" and "darts" in spaces.names()
    key = DartsSpace(C=4, layers=3).key
    assert key == "darts(C=4,layers=3,in_channels=3)"
    space = spaces.get(key)
    assert (space.C, space.layers, space.in_channels) == (4, 3, 3) and space.key == key
    arch = space.sample(0)
    assert arch.space == key and spaces.get(arch.space).validate(arch) == arch
    assert spaces.get("darts", C=16, in_channels=1).key == "darts(C=16,layers=5,in_channels=1)"
    with pytest.raises(InvalidArchitecture, match="'darts.D=3.' is not a key of this space"):
        spaces.get("darts(D=3)")


@pytest.mark.parametrize("kwargs, message", [
    ({"C": 0}, "darts option C must be at least 1, got 0"),
    ({"C": 2.5}, "darts option C must be a whole number, got 2.5"),
    ({"C": 5000}, "darts option C must be at most 1,024, got 5,000"),
    ({"layers": 2}, "darts option layers must be at least 3, got 2"),
    ({"layers": True}, "darts option layers must be a whole number"),
    ({"in_channels": 0}, "darts option in_channels must be at least 1"),
])
def test_bad_options_are_one_sentence(kwargs, message):
    with pytest.raises(InvalidOption, match=message):
        DartsSpace(**kwargs)


# ---- genotype string --------------------------------------------------------------------
def test_genotype_round_trip_for_random_archs(darts):
    for arch in darts.sample_many(50, rng=0):
        text = darts.to_string(arch)
        assert text.startswith("Genotype(normal=[(") and text.endswith("reduce_concat=[2, 3, 4, 5])")
        assert darts.from_string(text) == arch
        assert darts.from_genotype(darts.genotype(arch)) == arch
    assert darts.from_string(f"\n  {text}  \n") == arch  # surrounding whitespace is harmless


def test_darts_v2_parses_and_reserialises_exactly(darts):
    arch = darts.from_string(DARTS_V2)
    assert darts.to_string(arch) == DARTS_V2
    assert darts.genotype(arch) == Genotype(V2_NORMAL, [2, 3, 4, 5], V2_REDUCE, [2, 3, 4, 5])
    # node 0 of the normal cell: input1 c_{k-2}, sep_conv_3x3; input2 c_{k-1}, sep_conv_3x3
    assert arch.choices[:4] == (0, 3, 1, 3)
    # What DARTS' search prints (concat as a range) and multi-line text read the same.
    printed = DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert darts.from_string(printed) == arch
    assert darts.from_string(DARTS_V2.replace(", ", ",\n    ")) == arch
    # DARTS' own namedtuple (collections.namedtuple, range concats) is accepted as an object.
    theirs = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    assert repr(theirs(V2_NORMAL, [2, 3, 4, 5], V2_REDUCE, [2, 3, 4, 5])) == DARTS_V2
    assert darts.from_genotype(theirs(V2_NORMAL, range(2, 6), V2_REDUCE, range(2, 6))) == arch


@pytest.mark.parametrize("text, message", [
    ("", r"expected Genotype\(normal=\[...\], normal_concat=\[2, 3, 4, 5\]"),
    ("garbage (", "expected Genotype"),
    ("[('sep_conv_3x3', 0)]", "expected Genotype"),
    ("Phenotype(normal=[])", "expected Genotype"),
    ("Genotype(**fields)", "expected Genotype"),
    (genotype_string() + " + 1", "expected Genotype"),
    (genotype_string().replace("reduce_concat", "reduce_cat"), "unknown genotype field 'reduce_cat'"),
    (genotype_string().replace(", reduce_concat=[2, 3, 4, 5]", ""), r"genotype field\(s\) reduce_concat missing"),
    (genotype_string().replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os')"),
     "genotype field normal_concat is not a literal"),
    (genotype_string(normal=POOLS[:6]), "normal must be a list of 8 .op, input. pairs, two per node, got 6 pairs"),
    (genotype_string(reduce_concat="[2, 3, 4]"), r"reduce_concat must be \[2, 3, 4, 5\] .a cell outputs all 4 nodes"),
    (genotype_string(normal_concat="range(0, 1000000000000000000)"), "normal_concat must be"),
    (genotype_string(normal=POOLS[:7] + [("conv_7x1_1x7", 2)]),
     "normal cell, node 3, edge 2: unknown op 'conv_7x1_1x7'; known: max_pool_3x3, avg_pool_3x3"),
    (genotype_string(reduce=[("none", 0)] + POOLS[1:]),
     "decision 'reduce.node0.op1': reduce cell, node 0, edge 1: the zero op 'none' is not in this space"),
    (genotype_string(normal=POOLS[:3] + [("max_pool_3x3", 3)] + POOLS[4:]),
     r"decision 'normal.node1.input2': normal cell, node 1, edge 2: input 3 is not before the node .allowed 0..2."),
    (genotype_string(normal=POOLS[:7] + [("skip_connect", "2")]),
     r"normal cell, node 3, edge 2: expected an \(op, input\) pair such as"),
])
def test_malformed_strings_say_what_is_wrong(darts, text, message):
    with pytest.raises(InvalidArchitecture, match=message) as caught:
        darts.from_string(text)
    assert "\n" not in str(caught.value)


def test_non_string_and_incomplete_genotype_objects_are_rejected(darts):
    with pytest.raises(InvalidArchitecture, match="expected a genotype string, got int"):
        darts.from_string(42)
    with pytest.raises(InvalidArchitecture, match="reduce, reduce_concat missing"):
        darts.from_genotype(collections.namedtuple("G", "normal normal_concat")(V2_NORMAL, [2, 3, 4, 5]))


# ---- sampling, moves, repeated inputs ---------------------------------------------------
def test_samples_mutations_and_neighbours_stay_in_the_space(darts):
    archs = darts.sample_many(30, rng=1)
    assert len(set(archs)) == 30
    rng = np.random.default_rng(2)
    for arch in archs[:10]:
        mutant = darts.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.choices, mutant.choices)) == 1 and darts.is_valid(mutant)
        assert len(darts.neighbours(arch)) == sum(len(d) - 1 for d in darts.decisions)
        assert darts.from_tokens(darts.tokens(arch)) == arch


def test_a_node_may_read_one_state_twice_but_darts_never_derives_that(darts):
    # Legal (op1(x) + op2(x)), so every define-by-run trial is a member of the space ...
    twice = genotype_string(normal=POOLS[:2] + [("max_pool_3x3", 1), ("skip_connect", 1)] + POOLS[4:])
    arch = darts.from_string(twice)
    assert darts.to_string(arch) == twice and darts.repeats_input(arch)
    # ... and told apart from what DARTS' derivation (distinct inputs) can produce.
    assert not darts.repeats_input(darts.from_string(DARTS_V2))
    assert darts.define(lambda name, options: 0) == Arch("darts", (0,) * 32)
    assert darts.repeats_input(Arch("darts", (0,) * 32))


# ---- network ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 32])
def test_build_and_forward_random_archs(small, size):
    for arch in small.sample_many(2, rng=size):
        model = small.build(arch, num_classes=7, input_size=size).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_trains_end_to_end_on_one_channel_input():
    space = DartsSpace(C=4, layers=3, in_channels=1)
    model = space.build(space.sample(3), input_size=16).train()
    model(torch.randn(2, 1, 16, 16)).sum().backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].in_channels == 1


@pytest.mark.parametrize("size, expected", [(32, [32, 16, 16, 8, 8]), (15, [15, 8, 8, 4, 4])])
def test_reduction_cells_halve_the_resolution_and_double_the_channels(size, expected):
    space = DartsSpace(C=4, layers=5)
    assert space.reduction_layers == (1, 3)
    model = space.build(space.from_string(DARTS_V2), input_size=size).eval()
    assert [cell.reduction for cell in model.cells] == [False, True, False, True, False]
    shapes = []
    hooks = [cell.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for cell in model.cells]
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    assert [s[1] for s in shapes] == [s[2] for s in shapes] == expected  # odd sizes round up
    assert [s[0] for s in shapes] == [16, 32, 32, 64, 64]  # 4 nodes x C, 2C, 2C, 4C, 4C
    assert model.stem[0].out_channels == 12 and model.classifier.in_features == 64


def test_layers_follow_the_darts_definitions(small):
    from spaces.darts_ops import FactorizedReduce, ReLUConvBN

    model = small.build(small.from_string(DARTS_V2))
    normal, reduce, reduce_after_reduce = model.cells
    assert isinstance(normal.pre0, ReLUConvBN) and isinstance(reduce_after_reduce.pre0, FactorizedReduce)
    sep, dil = normal.ops[0], normal.ops[7]  # sep_conv_3x3 on c_{k-2}; dil_conv_3x3 on node 0
    assert [type(m).__name__ for m in sep] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"] * 2
    assert sep[1].groups == 4 and sep[1].kernel_size == (3, 3) and sep[2].kernel_size == (1, 1)
    assert [type(m).__name__ for m in dil] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    assert dil[1].dilation == (2, 2) and dil[1].padding == (2, 2) and dil[1].groups == 4
    assert isinstance(normal.ops[5], torch.nn.Identity)  # skip_connect, stride 1
    # Reduction cell: stride 2 only on edges from the cell inputs; pools carry no BN.
    assert isinstance(reduce.ops[0], torch.nn.MaxPool2d) and reduce.ops[0].stride == 2
    assert isinstance(reduce.ops[2], torch.nn.Identity)  # skip_connect from node 0
    assert isinstance(reduce.ops[3], torch.nn.MaxPool2d) and reduce.ops[3].stride == 2
    all_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.affine for bn in all_bn)
    assert [name for name, _ in model.named_children()] == ["stem", "cells", "pool", "classifier"]  # no aux head


def test_cell_matches_its_definition_node_by_node():
    from spaces.darts_ops import DartsCell

    cell = DartsCell(V2_NORMAL, 5, 6, 3, reduction=False, reduction_prev=False).eval()
    s0, s1 = torch.randn(1, 5, 6, 6), torch.randn(1, 6, 6, 6)
    with torch.no_grad():
        x0, x1 = cell.pre0(s0), cell.pre1(s1)
        o = cell.ops
        n0 = o[0](x0) + o[1](x1)
        n1 = o[2](x0) + o[3](x1)
        n2 = o[4](x1) + x0
        n3 = x0 + o[7](n0)
        expected = torch.cat([n0, n1, n2, n3], dim=1)
        assert (cell(s0, s1) - expected).abs().max().item() <= 1e-6


def test_none_op_exists_for_a_supernet_only():
    from spaces.darts_ops import make_op

    x = torch.randn(1, 4, 7, 7)
    assert torch.count_nonzero(make_op("none", 4, 1)(x)) == 0
    shapes = {name: tuple(make_op(name, 4, 2)(x).shape) for name in PRIMITIVES}
    assert set(shapes.values()) == {(1, 4, 4, 4)}  # every op, none included, reduces alike


def test_onnx_export_matches_torch(small):
    from tests.spaces.onnx_parity import ort_output

    # DARTS-V2 mixes every kind of module: sep/dil convs, pools, identity, factorized reduce.
    model = small.build(small.from_string(DARTS_V2), input_size=16).eval()
    x = torch.randn(1, 3, 16, 16)
    got = ort_output(model, x)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=1e-4)


# ---- costs -------------------------------------------------------------------------------
def test_macs_of_a_hand_checked_pooling_cell(small):
    """Only pooling in the cells: MACs come from the stem, the 1x1 preprocessing, the
    factorized reduction of c_{k-2} after a reduction, and the classifier. C=4, layers=3
    at 16x16: normal (4 ch, 16x16), reduce (8 ch, -> 8x8), reduce (16 ch, -> 4x4)."""
    stem, classifier = 3 * 12 * 9 * 256, 64 * 10
    preprocess = (12 * 4 * 256 * 2                     # normal: 12 -> 4, twice
                  + 12 * 8 * 256 + 16 * 8 * 256         # reduce: 12 -> 8, 16 -> 8
                  + 16 * 16 * 64 + 32 * 16 * 64)        # reduce: FR 16 -> 2x8 at 8x8, 32 -> 16
    pools = small.from_string(genotype_string())
    assert small.cost(pools, input_size=16).macs == stem + classifier + preprocess
    # One sep_conv_3x3 on node 0 of the normal cell: two (depthwise 3x3 + pointwise) units.
    sep = small.from_string(genotype_string(normal=[("sep_conv_3x3", 0)] + POOLS[1:]))
    assert small.cost(sep, input_size=16).macs - small.cost(pools, input_size=16).macs == 2 * (4 * 9 + 4 * 4) * 256


def test_macs_grow_with_C_and_params_match_the_module():
    narrow, wide = DartsSpace(C=4, layers=3), DartsSpace(C=8, layers=3)
    arch = narrow.sample(5)
    cost_narrow, cost_wide = narrow.cost(arch, input_size=16), wide.cost(Arch(wide.key, arch.choices), input_size=16)
    assert cost_wide.macs > 2 * cost_narrow.macs and cost_wide.params > cost_narrow.params
    assert cost_narrow.params == sum(p.numel() for p in narrow.build(arch).parameters())


def test_darts_v2_has_the_published_parameter_count():
    # CIFAR-10 setting C=36, 20 cells, 10 classes: 3.3M in the paper; DARTS' train.py logs
    # "param size = 3.349342MB" (auxiliary head excluded). Counted without a forward pass.
    space = DartsSpace(C=36, layers=20)
    model = space.build(space.from_string(DARTS_V2))
    assert sum(p.numel() for p in model.parameters()) == 3_349_342
