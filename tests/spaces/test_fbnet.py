"""The HW-NAS-Bench FBNet space: string form, network shape, MACs, export."""

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

import spaces
from spaces import InvalidArchitecture
from spaces.fbnet import FBNetSpace
from spaces.mobile_blocks import ChannelShuffle, InvertedResidual, Skip

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP, K3_E1, K5_E6 = 8, 0, 7

# HW-NAS-Bench, hw_nas_bench_api/fbnet_models/model_infer.py, written out again here
# so the hand count below does not depend on the code under test.
DEPTHS = (1, 4, 4, 4, 4, 4, 1)
WIDTHS = (16, 24, 32, 64, 112, 184, 352)
LAYOUT = {  # stem stride, stage strides, header width, classes, input size
    "cifar": (1, (1, 1, 2, 2, 1, 2, 1), 1504, 100, 32),
    "imagenet": (2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000, 224),
}
# (kernel, expansion, groups) of each option; None = skip
BLOCK = {0: (3, 1, 1), 1: (3, 1, 2), 2: (3, 3, 1), 3: (3, 6, 1), 4: (5, 1, 1),
         5: (5, 1, 2), 6: (5, 3, 1), 7: (5, 6, 1), 8: None}


def hand_macs(ops, stem="cifar", size=None):
    """Multiply-adds layer by layer (convs and the classifier; BN/ReLU/pool/add are free)."""
    stem_stride, strides, header, classes, default_size = LAYOUT[stem]
    h = (size or default_size) // stem_stride
    macs = h * h * 16 * 3 * 3 * 3  # stem 3x3 conv, 3 -> 16
    c_in, layer = 16, 0
    for depth, width, stage_stride in zip(DEPTHS, WIDTHS, strides):
        for i in range(depth):
            s = stage_stride if i == 0 else 1
            h_out = h // s
            block = BLOCK[ops[layer]]
            if block is None:  # identity, or 1x1 conv with the stride when shapes change
                macs += h_out * h_out * c_in * width if (s != 1 or c_in != width) else 0
            else:
                k, e, g = block
                mid = c_in * e
                macs += h * h * c_in * mid // g          # 1x1 expand (grouped)
                macs += h_out * h_out * mid * k * k      # kxk depthwise (stride)
                macs += h_out * h_out * mid * width // g  # 1x1 project (grouped)
            c_in, h, layer = width, h_out, layer + 1
    return macs + h * h * 352 * header + header * classes


@pytest.fixture(scope="module")
def space():
    return FBNetSpace()


@pytest.fixture(scope="module")
def help_table(shared_data):
    return pd.read_csv(shared_data / "help-latency" / "fbnet_latency.csv")


def test_space_has_22_layers_of_9_blocks_in_hw_nas_bench_order(space):
    assert len(space.decisions) == 22
    assert all(d.options == OPS for d in space.decisions)
    assert space.size == 9 ** 22 and isinstance(space.size, int)
    assert space.num_options == 22 * 9
    assert (space.key, space.default_input_size, space.default_num_classes) == ("fbnet", 32, 100)
    imagenet = spaces.get("fbnet", stem="imagenet")
    assert (imagenet.key, imagenet.default_input_size, imagenet.default_num_classes) == (
        "fbnet:imagenet", 224, 1000)
    assert imagenet.name == space.name == "fbnet"


def test_every_help_row_parses_and_round_trips(space, help_table):
    strings = help_table["op_idx_list"].tolist()
    assert len(strings) == 5000
    archs = [space.from_string(s) for s in strings]
    assert [space.to_string(a) for a in archs] == strings
    assert len(set(archs)) == 5000
    first = archs[0]
    assert first.choices[:4] == (7, 8, 1, 8) and space.blocks(first)[1].name == "skip"


@pytest.mark.parametrize("text, message", [
    ("7-8-1", "expected 22 '-'-separated op indices, got 3"),
    ("-".join(["1"] * 23), "got 23"),
    ("", "got 1"),
    ("-".join(["1"] * 21 + ["x"]), "decision 'layer22'.*'x' is not a non-negative integer"),
    ("-".join(["1.5"] + ["1"] * 21), "decision 'layer1'.*'1.5'"),
    ("-".join(["+1"] + ["1"] * 21), "'\\+1' is not"),
    ("-".join(["1"] * 10 + [""] + ["1"] * 11), "decision 'layer11'.*'' is not"),
    ("-".join(["1"] * 5 + ["9"] + ["1"] * 16), "decision 'layer6'.*option 9 out of range 0..8"),
    ("1-" * 21 + "-1", "got 23"),  # a negative index splits into an extra empty token
])
def test_malformed_strings_raise_one_clear_error(space, text, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.from_string(text)


def test_bad_input_types_and_constructor_arguments_raise(space):
    with pytest.raises(InvalidArchitecture, match="expected a string, got list"):
        space.from_string([1] * 22)
    with pytest.raises(InvalidArchitecture, match="unknown stem 'mnist'"):
        FBNetSpace(stem="mnist")
    with pytest.raises(InvalidArchitecture, match="in_channels must be at least 1"):
        FBNetSpace(in_channels=0)
    assert space.from_string(" " + "-".join(["0"] * 22) + "\n") == space.arch([0] * 22)


def test_sampled_networks_run_at_32x32(space):
    for arch in space.sample_many(3, rng=7) + [space.arch([SKIP] * 22)]:
        net = space.build(arch).eval()
        with torch.no_grad():
            out = net(torch.randn(1, 3, 32, 32))
        assert out.shape == (1, 100) and torch.isfinite(out).all()
    gray = FBNetSpace(in_channels=1).build(space.arch([K3_E1] * 22), num_classes=10).eval()
    with torch.no_grad():
        assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("stem, size, final", [("cifar", 32, 4), ("imagenet", 64, 2)])
def test_total_stride_is_8_for_cifar_and_32_for_imagenet(stem, size, final):
    space = FBNetSpace(stem)
    net = space.build(space.sample(1)).eval()
    seen = []
    net.header.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    with torch.no_grad():
        net(torch.randn(1, 3, size, size))
    assert seen == [(1, 352, final, final)]


def test_skip_is_identity_only_where_shapes_agree_and_residuals_follow_the_same_rule(space):
    net = space.build(space.arch([SKIP] * 22))
    projecting = [i + 1 for i, layer in enumerate(net.layers) if layer.project is not None]
    # layer 1 is 16->16 stride 1 (identity); each later stage's first layer changes width.
    assert projecting == [2, 6, 10, 14, 18, 22]
    assert all(isinstance(layer, Skip) for layer in net.layers)
    net = space.build(space.arch([K5_E6] * 22))
    residual = [i + 1 for i, layer in enumerate(net.layers) if layer.use_residual]
    assert residual == [1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 20, 21]
    assert all(isinstance(layer, InvertedResidual) for layer in net.layers)


def test_channel_shuffle_interleaves_the_two_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


@pytest.mark.parametrize("name, ops, expected", [
    ("all skip", [SKIP] * 22, 11_608_960),
    ("all k3_e1", [K3_E1] * 22, 31_322_240),
    ("all k5_e6", [K5_E6] * 22, 160_926_080),
    ("mixed, g2 and skips", [1, 8, 5, 8, 1, 8, 8, 8, 5, 2, 8, 8, 3, 6, 4, 8, 8, 1, 0, 1, 5, 8], None),
])
def test_macs_match_a_hand_count_at_32x32(space, name, ops, expected):
    macs = space.cost(space.arch(ops)).macs
    assert macs == hand_macs(ops)
    if expected is not None:
        assert macs == expected


def test_fbnet_b_at_224_matches_the_published_295m_flops():
    # FBNet-B as listed in maskrcnn-benchmark's fbnet_modeldef "fbnet_b"; the FBNet
    # paper (Wu et al. 2019) reports 295M FLOPs (multiply-adds) at 224x224.
    fbnet_b = [0, 3, 4, 0, 0, 7, 6, 3, 7, 7, 4, 8, 6, 7, 0, 4, 6, 7, 4, 7, 7, 3]
    space = FBNetSpace("imagenet")
    macs = space.cost(space.arch(fbnet_b)).macs
    assert macs == hand_macs(fbnet_b, "imagenet") == 296_614_728
    assert macs == pytest.approx(295e6, rel=0.01)


def test_cifar_layout_macs_track_hw_nas_bench_latencies_better_than_imagenet_layout(help_table):
    # HW-NAS-Bench's FPGA/Eyeriss numbers are summed from per-layer tables of this
    # very network; MACs of the right (CIFAR) layout must rank them closely.
    ops = [[int(t) for t in s.split("-")] for s in help_table["op_idx_list"]]
    cifar = np.array([hand_macs(o, "cifar") for o in ops])
    imagenet = np.array([hand_macs(o, "imagenet") for o in ops])
    for device in ("fpga", "eyeriss"):
        rho_cifar = spearmanr(cifar, help_table[device])[0]
        assert rho_cifar > 0.95
        assert rho_cifar > spearmanr(imagenet, help_table[device])[0] + 0.03


def test_built_network_exports_to_onnx_and_matches_onnxruntime(space):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = space.build(space.arch([1, 8, 5, 8, 1] + [SKIP] * 17)).eval()
    x = torch.randn(1, 3, 32, 32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
