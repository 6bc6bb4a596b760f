"""The NAO/ENAS micro cell space: NAO's integer string and token sequence, branch-swap
symmetry, the built network (function, shapes, hand-counted MACs, ONNX export)."""

import math

import numpy as np
import pytest
import torch

import spaces
from spaces import Arch, InvalidArchitecture
from spaces.nao import OPS, NAOSpace, Node

# Node i = "x_in x_op y_in y_op"; ops: 0 sep3, 1 sep5, 2 avg, 3 max, 4 identity.
POOL_CELL = "0 2 1 3  2 2 2 4  3 2 3 4  4 2 4 4  5 2 5 4"  # a chain: only node 4 is a loose end
IDENTITY_CELL = "1 4 1 4  1 4 1 4  1 4 1 4  1 4 1 4  1 4 1 4"  # input 0 and all 5 nodes are loose ends


@pytest.fixture(scope="module")
def nao() -> NAOSpace:
    return NAOSpace()


def test_decisions_follow_nao_order_and_size_is_exact(nao):
    assert len(nao.decisions) == 40
    assert [d.name for d in nao.decisions[:4]] == [
        "normal.node0.x.input", "normal.node0.x.op", "normal.node0.y.input", "normal.node0.y.op"]
    assert nao.decisions[20].name == "reduce.node0.x.input"
    for k, d in enumerate(nao.decisions):
        node = (k % 20) // 4
        assert len(d) == (node + 2 if k % 2 == 0 else 5)
    # Per cell: prod_i ((i+2) * 5)^2 (two branches); two cells.
    assert nao.size == math.prod((i + 2) * 5 for i in range(5)) ** 4
    assert NAOSpace(B=1).size == 10 ** 4
    assert NAOSpace(B=2).size == (10 * 15) ** 4


def test_key_names_non_default_parameters():
    assert NAOSpace().key == "nao"
    assert NAOSpace(B=4, C=8, N=2).key == "nao:B4:C8:N2"
    assert NAOSpace(in_channels=1).key == "nao:B5:C16:N1:in1"
    assert spaces.get("nao", B=3).key == "nao:B3:C16:N1"


@pytest.mark.parametrize("kwargs", [{"B": 0}, {"C": -1}, {"N": 0}, {"in_channels": 2.5}, {"B": True}])
def test_bad_space_parameters_are_rejected(kwargs):
    with pytest.raises(InvalidArchitecture, match="must be a positive integer"):
        NAOSpace(**kwargs)


def test_string_is_nao_integer_list_and_cells_decode_it(nao):
    text = " ".join(POOL_CELL.split() + IDENTITY_CELL.split())
    arch = nao.from_string(text)
    assert nao.to_string(arch) == text
    normal, reduce = nao.cells(arch)
    assert normal[0] == Node(0, 2, 1, 3) and normal[4] == Node(5, 2, 5, 4)
    assert all(n == Node(1, 4, 1, 4) for n in reduce)
    assert nao.from_cells(normal, reduce) == arch
    assert nao.describe(arch).startswith("normal: [0 avg3 + 1 max3] [2 avg3 + 2 id]")
    assert " ; reduce: [1 id + 1 id]" in nao.describe(arch)


@pytest.mark.parametrize("B", [5, 2, 7])
def test_string_round_trip_many_samples(B):
    space = NAOSpace(B=B)
    for arch in space.sample_many(200, rng=B):
        text = space.to_string(arch)
        assert len(text.split()) == 8 * B
        assert space.from_string(text) == arch
    assert space.from_string("  " + "\t".join(text.split()) + "\n") == arch  # any whitespace


@pytest.mark.parametrize("text, message", [
    ("0 1 0 1", "needs 40 integers .* got 4"),
    (" ".join(["0 0 0 0"] * 10) + " 0", "got 41"),
    ("", "got 0"),
    ("0 x" + " 0" * 38, "'x' is not an integer"),
    ("0 0 0 0  0 0 4 0" + " 0" * 32, "normal cell, node 1, branch y: input 4 is not before the node .allowed 0..2"),
    (" ".join(["0 0 0 0"] * 5) + " 0 0 2 0" + " 0" * 16, "reduce cell, node 0, branch y: input 2 is not before"),
    ("0 5" + " 0" * 38, "normal cell, node 0, branch x: unknown op 5 .ops are 0..4: sep_conv_3x3"),
    ("0 -1" + " 0" * 38, "unknown op -1"),
    ("-1 0" + " 0" * 38, "input -1 is not before the node"),
])
def test_malformed_strings_say_what_is_wrong(nao, text, message):
    with pytest.raises(InvalidArchitecture, match=message):
        nao.from_string(text)


def test_malformed_string_names_the_decision(nao):
    with pytest.raises(InvalidArchitecture, match="decision 'normal.node1.y.input'"):
        nao.from_string("0 0 0 0  0 0 4 0" + " 0" * 32)
    with pytest.raises(InvalidArchitecture, match="expected a string"):
        nao.from_string(None)


def test_nao_tokens_match_parse_arch_to_seq(nao):
    arch = nao.from_string(" ".join(POOL_CELL.split() + IDENTITY_CELL.split()))
    # NAO_pytorch: prev node + 1, op + 7, normal cell then reduction cell.
    expected = [v + 1 if k % 2 == 0 else v + 7 for k, v in enumerate(arch.choices)]
    assert nao.to_tokens(arch) == expected
    assert expected[:4] == [1, 9, 2, 10]
    assert nao.op_token_offset == 7 and nao.nao_vocab_size == 12
    assert nao.to_nao_tokens(arch) == expected


@pytest.mark.parametrize("B", [5, 3, 8])
def test_nao_tokens_round_trip_and_stay_in_vocabulary(B):
    space = NAOSpace(B=B)
    for arch in space.sample_many(200, rng=10 + B):
        tokens = space.to_tokens(arch)
        assert len(tokens) == 8 * B
        inputs, ops = tokens[0::2], tokens[1::2]
        assert all(1 <= t <= B + 1 for t in inputs)  # 0 stays free for SOS/EOS
        assert all(B + 2 <= t < space.nao_vocab_size for t in ops)
        assert space.from_nao_tokens(tokens) == arch
        # The generic per-decision tokens of the base class are a different, still-invertible code.
        assert space.from_tokens(space.tokens(arch)) == arch


def test_malformed_nao_tokens(nao):
    good = nao.to_tokens(nao.sample(0))
    with pytest.raises(InvalidArchitecture, match="expected 40 NAO tokens, got 39"):
        nao.from_nao_tokens(good[:-1])
    with pytest.raises(InvalidArchitecture, match="token 7 at position 0 should be an input token .1..6"):
        nao.from_nao_tokens([7] + good[1:])
    with pytest.raises(InvalidArchitecture, match="token 0 at position 0 should be an input token"):
        nao.from_nao_tokens([0] + good[1:])
    with pytest.raises(InvalidArchitecture, match="token 3 at position 1 should be an op token .7..11"):
        nao.from_nao_tokens(good[:1] + [3] + good[2:])
    with pytest.raises(InvalidArchitecture, match="node 0, branch x: input 2 is not before the node"):
        nao.from_nao_tokens([3] + good[1:])


def test_symmetric_variants_are_all_distinct_swaps(nao):
    for arch in nao.sample_many(8, rng=3):
        c = arch.choices
        swappable = sum(c[s:s + 2] != c[s + 2:s + 4] for s in range(0, 40, 4))
        variants = nao.symmetric_variants(arch)
        assert len(variants) == 2 ** swappable - 1
        assert len(set(variants)) == len(variants) and arch not in variants
        assert len(nao.symmetric_variants(arch, max_swaps=1)) == swappable
        canon = nao.canonical(arch)
        assert all(nao.is_valid(v) and nao.canonical(v) == canon for v in variants)
        for v in nao.symmetric_variants(arch, max_swaps=1):  # one node changed, branches swapped
            diff = [s for s in range(0, 40, 4) if v.choices[s:s + 4] != c[s:s + 4]]
            assert len(diff) == 1
            s = diff[0]
            assert v.choices[s:s + 4] == c[s + 2:s + 4] + c[s:s + 2]
    # A node whose branches are equal has no distinct swap; the identity cells have none at all.
    same = nao.from_string(IDENTITY_CELL + " " + IDENTITY_CELL)
    assert nao.symmetric_variants(same) == []
    assert nao.sample_symmetric(same, rng=0) == same


def test_canonical_tells_swap_classes_apart(nao):
    archs = nao.sample_many(100, rng=4)
    assert len({nao.canonical(a) for a in archs}) == 100  # random archs are not swaps of one another
    rng = np.random.default_rng(0)
    for a in archs[:20]:
        assert nao.canonical(nao.sample_symmetric(a, rng)) == nao.canonical(a)


def _randomise_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BN statistics and affine terms, so eval-mode BN is not the identity."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def _swapped_state(state: dict, space: NAOSpace, model, arch: Arch, variant: Arch) -> dict:
    """``state`` with x_op/y_op exchanged on every node whose branches the variant swapped."""
    starts = {(cell, i): cell * 4 * space.B + 4 * i for cell in range(2) for i in range(space.B)}
    swapped = {node for node, s in starts.items() if arch.choices[s:s + 4] != variant.choices[s:s + 4]}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "nodes":
            cell = 1 if model.cells[int(parts[1])].reduction else 0
            if (cell, int(parts[3])) in swapped:
                parts[4] = {"x_op": "y_op", "y_op": "x_op"}[parts[4]]
        out[".".join(parts)] = value
    return out


def test_symmetric_variants_compute_the_same_function():
    space = NAOSpace(B=4, C=4, N=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 12, generator=gen)
    for arch in space.sample_many(2, rng=7):
        model = space.build(arch).eval()
        _randomise_bn(model, gen)
        with torch.no_grad():
            ref = model(x)
        variants = space.symmetric_variants(arch)
        picks = [variants[0], variants[-1], variants[len(variants) // 2]]  # one swap, all swaps, some
        for variant in picks:
            other = space.build(variant).eval()
            other.load_state_dict(_swapped_state(model.state_dict(), space, model, arch, variant))
            with torch.no_grad():
                # Not torch.testing.assert_close: its first call imports torch.distributed (~4 s).
                assert (other(x) - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kwargs, size, classes", [({}, 32, 10), ({"in_channels": 1, "B": 3, "C": 6}, 28, 7),
                                                   ({"N": 2, "C": 8}, 20, 3)])
def test_build_and_forward_several_samples(kwargs, size, classes):
    space = NAOSpace(**kwargs)
    for arch in space.sample_many(2, rng=size):
        model = space.build(arch, num_classes=classes, input_size=size)
        assert len(model.cells) == 3 * space.N + 2
        model.train()
        out = model(torch.randn(2, space.in_channels, size, size))
        assert out.shape == (2, classes) and torch.isfinite(out).all()
        out.sum().backward()  # trainable end to end
        assert model.stem[0].weight.grad is not None


def test_macs_of_hand_checked_pool_and_identity_cells(nao):
    """Cells without conv ops: MACs come only from the stem, the 1x1 preprocess/combine
    convs, factorized reductions (2 stride-2 1x1 convs of C_out/2) and the classifier.
    Default config: C=16, N=1 -> cells normal(16, 32x32), reduce(32, ->16x16),
    normal(32, 16x16), reduce(64, ->8x8), normal(64, 8x8); stem 3->48."""
    stem, classifier = 3 * 48 * 9 * 32 * 32, 64 * 10

    def fr(c_in, c_out, hw):  # factorized reduce at output resolution hw x hw
        return c_in * c_out * hw * hw

    pool = nao.from_string(POOL_CELL + " " + POOL_CELL)
    expected_pool = stem + classifier + sum([
        48 * 16 * 1024 * 2 + 16 * 16 * 1024,                # normal: pre0, pre1 (48->16), combine 16->16
        48 * 32 * 1024 + 16 * 32 * 1024 + 32 * 32 * 256,    # reduce: pre0 48->32, pre1 16->32, combine
        fr(16, 32, 16) + 32 * 32 * 256,                     # normal: pre0 is FR of the 32x32 input
        32 * 64 * 256 * 2 + 64 * 64 * 64,                   # reduce
        fr(32, 64, 8) + 64 * 64 * 64,                       # normal
    ])
    ident = nao.from_string(IDENTITY_CELL + " " + IDENTITY_CELL)
    # 6 loose ends (input 0 + 5 nodes); in a reduction cell each of the 10 identities on
    # input 1 is a stride-2 FR, and so is the loose input 0 before the concat.
    expected_ident = stem + classifier + sum([
        48 * 16 * 1024 * 2 + 6 * 16 * 16 * 1024,
        48 * 32 * 1024 + 16 * 32 * 1024 + 11 * fr(32, 32, 16) + 6 * 32 * 32 * 256,
        fr(16, 32, 16) + 6 * 32 * 32 * 256,
        32 * 64 * 256 * 2 + 11 * fr(64, 64, 8) + 6 * 64 * 64 * 64,
        fr(32, 64, 8) + 6 * 64 * 64 * 64,
    ])
    assert nao.cost(pool).macs == expected_pool
    assert nao.cost(ident).macs == expected_ident
    # Swapping branches changes neither the network nor its cost.
    conv_arch = nao.sample(5)
    assert nao.cost(nao.symmetric_variants(conv_arch)[-1]).macs == nao.cost(conv_arch).macs > expected_ident


def test_onnx_export_matches_torch():
    from tests.spaces.onnx_parity import ort_output

    space = NAOSpace(B=3, C=4)
    model = space.build(space.sample(11)).eval()
    x = torch.randn(1, 3, 16, 16)
    got = ort_output(model, x)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=1e-4)


def test_op_set_is_nao_ws_order():
    assert OPS == ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
