"""Results that deploy as-is: an exported file says how to prepare its input, names its
classes, is honest about its accuracy, can take raw images, and has an INT8 twin.

The preprocessing round trip applies *only* what the file's metadata says, with numpy
(the code of README's "Deploying a result"), and runs the file in ONNX Runtime.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import devices
import spaces
from hwnas import onnx_meta
from hwnas.export import ExportError, export_arch


# ---- README, "Deploying a result": numpy + onnxruntime only ------------------------------
def resize_bilinear(x: np.ndarray, size) -> np.ndarray:
    """H x W x C image to size (half-pixel centres, no antialiasing)."""
    h, w = x.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        return x
    ys = np.clip((np.arange(H) + 0.5) * h / H - 0.5, 0, h - 1)
    xs = np.clip((np.arange(W) + 0.5) * w / W - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def preprocess(raw: np.ndarray, p: dict) -> np.ndarray:
    """A raw image (H x W, or H x W x C) -> the network's 1 x C x H x W float32 input."""
    x = raw.astype(np.float32) * p["scale"]
    if x.ndim == 2:
        x = x[:, :, None]
    x = resize_bilinear(x, p["input_size"])
    if p["channel_map"] == "repeat":
        x = np.repeat(x, p["channels"], axis=2)
    elif p["channel_map"] == "mean":
        x = x.mean(axis=2, keepdims=True)
    x = (x - np.array(p["mean"])) / np.array(p["std"])
    return x.transpose(2, 0, 1)[None].astype(np.float32)
# -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from hwnas.export_train import train_for_export

    space = spaces.get("fbnetv2", preset="tiny")
    arch = space.from_string("r16|c16-24-32|k3e3-k3e1-k5e3-k3e3-k3e6-k3e1")
    net = train_for_export(space, arch, "digits", 3, seed=0)
    folder = tmp_path_factory.mktemp("deploy")
    plain = export_arch(space, arch, folder / "plain.onnx", model=net.module, accuracy=net.accuracy,
                        measure=False, data=net.data, metadata=net.deploy_metadata())
    return space, arch, net, folder, plain


def _digits_val():
    from sklearn.datasets import load_digits

    from hwnas.evaluators.datasets import split_indices

    bunch = load_digits()
    _, val = split_indices(bunch.target, seed=0)
    return bunch.images[val], bunch.target[val]


def test_metadata_alone_reproduces_the_stamped_accuracy(trained):
    _, _, net, folder, _ = trained
    meta = onnx_meta.read_metadata(folder / "plain.onnx")
    assert meta["trained"] is True and meta["accuracy_unit"] == "%"
    assert meta["dataset"] == "digits" and meta["class_names"] == [str(i) for i in range(10)]
    assert "validation" in meta["accuracy_split"] and meta["accuracy_source"] == "these weights"
    images, labels = _digits_val()
    session = ort.InferenceSession(str(folder / "plain.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: preprocess(im, meta["preprocessing"])})[0]
                             for im in images])
    names = meta["class_names"]
    predicted = [names[i] for i in logits.argmax(1)]
    accuracy = 100.0 * np.mean([p == str(t) for p, t in zip(predicted, labels)])
    assert accuracy > 80.0
    assert abs(accuracy - meta["accuracy"]) <= 1.0


def test_baked_preprocessing_takes_the_raw_image_and_gives_the_same_logits(trained, tmp_path):
    space, arch, net, folder, _ = trained
    report = export_arch(space, arch, tmp_path / "baked.onnx", model=net.module,
                         accuracy=net.accuracy, measure=False, data=net.data,
                         metadata=net.deploy_metadata(), bake_preprocessing=True)
    assert report.input_shape == (8, 8, 1) and "uint8" in report.input_format
    meta = onnx_meta.read_metadata(folder / "plain.onnx")
    images, _ = _digits_val()
    raw = images[:50].astype(np.uint8)[..., None]
    baked = ort.InferenceSession(str(tmp_path / "baked.onnx"), providers=["CPUExecutionProvider"])
    assert baked.get_inputs()[0].type == "tensor(uint8)"
    got = baked.run(None, {baked.get_inputs()[0].name: raw})[0]
    plain = ort.InferenceSession(str(folder / "plain.onnx"), providers=["CPUExecutionProvider"])
    want = np.concatenate([plain.run(None, {"input": preprocess(im, meta["preprocessing"])})[0]
                           for im in images[:50]])
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_int8_file_is_checked_accurate_and_measured(trained, tmp_path):
    space, arch, net, _, plain = trained
    profiler = devices.get("ort:cpu", plan=devices.TimingPlan.quick())
    report = export_arch(space, arch, tmp_path / "int8.onnx", model=net.module,
                         accuracy=net.accuracy, device=profiler, data=net.data,
                         metadata=net.deploy_metadata(), int8=True)
    assert report.int8 and report.checker_ok
    assert abs(report.accuracy - report.fp32_accuracy) <= 2.0
    assert report.fp32_accuracy == pytest.approx(net.accuracy, abs=0.3)
    assert report.latency_ms > 0 and report.fp32_latency_ms > 0
    meta = onnx_meta.read_metadata(tmp_path / "int8.onnx")
    assert meta["int8"] is True and meta["fp32_accuracy"] == pytest.approx(report.fp32_accuracy)
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_untrained_export_needs_the_flag_and_carries_no_accuracy(tmp_path):
    space = spaces.get("fbnetv2", preset="tiny")
    with pytest.raises(ExportError, match="no trained weights"):
        export_arch(space, space.sample(0), tmp_path / "m.onnx", measure=False)
    with pytest.raises(ExportError, match="no accuracy"):
        export_arch(space, space.sample(0), tmp_path / "m.onnx", measure=False, untrained=True,
                    accuracy=94.3)
    export_arch(space, space.sample(0), tmp_path / "m.onnx", measure=False, untrained=True)
    meta = onnx_meta.read_metadata(tmp_path / "m.onnx")
    assert meta["trained"] is False and "accuracy" not in meta


def test_int8_without_calibration_data_or_on_a_torch_device_is_refused(tmp_path):
    space = spaces.get("fbnetv2", preset="tiny")
    model = space.build(space.sample(0))
    with pytest.raises(ExportError, match="calibration images"):
        export_arch(space, space.sample(0), tmp_path / "m.onnx", model=model, measure=False, int8=True)
    assert not (tmp_path / "m.onnx").exists()
