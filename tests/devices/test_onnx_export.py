"""The one torch -> ONNX converter keeps the input of networks whose output ignores it, so
they are measured like every other member of their space."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import devices
import spaces
from devices.onnx_export import INPUT_NAME, output_depends_on_input, to_onnx

# a valid NB201 cell whose every path from input to output is cut by `none` edges
DEGENERATE = "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|"
SMALL = {"C": 4, "N": 1}


def degenerate_cells(space, k: int):
    cells = [space.from_string(DEGENERATE)]
    index = 0
    while len(cells) < k:
        arch = space.from_index(index)
        if space.is_disconnected(arch) and arch not in cells:
            cells.append(arch)
        index += 1
    return cells


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_an_output_independent_of_the_input_keeps_the_input(exporter, dynamic_batch):
    space = spaces.get("nb201", **SMALL)
    arch = space.from_string(DEGENERATE)
    assert space.is_disconnected(arch)
    module = space.build(arch).eval()
    model = to_onnx(module, space.input_shape(), exporter=exporter,
                    dynamic_batch=dynamic_batch).model
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert output_depends_on_input(model)
    x = np.random.default_rng(0).standard_normal((1, *space.input_shape())).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {INPUT_NAME: x})
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-5)


def test_ordinary_networks_are_exported_unwrapped():
    """The wrapper is only for networks that need it: a connected cell's graph is exactly
    what the exporter writes."""
    space = spaces.get("nb201", **SMALL)
    arch = space.from_index(100)
    assert not space.is_disconnected(arch)
    model = to_onnx(space.build(arch).eval(), space.input_shape(), exporter="torchscript",
                    dynamic_batch=False).model
    assert output_depends_on_input(model)
    assert not any(n.op_type == "Slice" for n in model.graph.node)


@pytest.mark.parametrize("spec", ["ort:cpu", "torch:cpu"])
def test_degenerate_cells_are_profiled_like_any_other(spec, tmp_path):
    space = spaces.get("nb201", **SMALL)
    cells = degenerate_cells(space, 4)
    profiler = devices.get(spec, plan=devices.TimingPlan.quick())
    for arch in cells:
        m = profiler.measure(space.build(arch).eval(), space.input_shape())
        assert np.isfinite(m.latency_ms) and m.latency_ms > 0
