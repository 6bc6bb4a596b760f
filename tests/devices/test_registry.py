"""Spec strings, aliases, availability, and refusing GPU backends that cannot run here."""

import pytest
import torch

import devices
from devices import DeviceUnavailable
from spaces import UnknownName

HAS_CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("spec,parsed", [
    ("torch:cpu", ("torch:cpu", None)), ("cpu", ("torch:cpu", None)), ("CPU", ("torch:cpu", None)),
    ("cuda", ("torch:cuda", 0)), ("torch:cuda", ("torch:cuda", 0)), ("torch:cuda:3", ("torch:cuda", 3)),
    ("ort:cpu", ("ort:cpu", None)), ("ort:cuda", ("ort:cuda", 0)), ("ort:tensorrt", ("ort:tensorrt", 0)),
    ("tensorrt", ("tensorrt", 0)), ("tensorrt:1", ("tensorrt", 1)),
])
def test_specs_and_aliases_parse(spec, parsed):
    assert devices.parse(spec) == parsed


@pytest.mark.parametrize("spec", ["tpu", "torch:gpu", "ort:cpu:1", "tensorrt:x", "torch:cuda:-1", ""])
def test_unknown_spec_names_the_known_ones(spec):
    with pytest.raises(UnknownName, match="unknown device .*known: .*ort:cpu"):
        devices.get(spec)


def test_cpu_backends_are_available_and_every_backend_is_listed():
    rows = {s.spec: s for s in devices.available()}
    assert rows["torch:cpu"].available and rows["ort:cpu"].available
    assert {"torch:cpu", "ort:cpu", "ort:cuda", "ort:tensorrt"} <= set(rows)
    assert any(spec.startswith("tensorrt:") for spec in rows)
    assert any(spec.startswith("torch:cuda:") for spec in rows)
    for status in rows.values():
        assert status.available == (status.reason == "")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_torch_cuda_without_gpu_is_one_clear_sentence():
    with pytest.raises(DeviceUnavailable, match=r"torch:cuda:0 needs a CUDA GPU"):
        devices.get("cuda")


def test_ort_cuda_fall_back_to_cpu_is_detected():
    """onnxruntime-gpu silently runs on CPU when the CUDA provider cannot load; that must be
    an error naming ORT's reason, never a CPU number labelled as GPU."""
    if "ort:cuda" in {s.spec for s in devices.available() if s.available}:
        pytest.skip("the ONNX Runtime CUDA provider works on this machine")
    with pytest.raises(DeviceUnavailable) as info:
        devices.get("ort:cuda")
    message = str(info.value)
    assert message.startswith("ort:cuda requested but")
    assert "\n" not in message
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert "fell back to CPUExecutionProvider: " in message
        assert "provider did not load" not in message  # ORT's own reason was captured


def test_ort_tensorrt_fall_back_is_detected():
    if "ort:tensorrt" in {s.spec for s in devices.available() if s.available}:
        pytest.skip("the ONNX Runtime TensorRT provider works on this machine")
    with pytest.raises(DeviceUnavailable, match=r"^ort:tensorrt requested but"):
        devices.get("ort:tensorrt")


def test_tensorrt_missing_is_one_clear_sentence():
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    if has_trt and HAS_CUDA:
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(DeviceUnavailable, match=r"tensorrt"):
        devices.get("tensorrt")


def test_register_adds_a_backend():
    class Fake(devices.Profiler):
        backend, target = "fake", "cpu"

        def _prepare(self, module, input_shape, batch):
            raise AssertionError("not called")

    devices.register("fake:cpu", Fake)
    try:
        profiler = devices.get("fake:cpu", threads=2)
        assert profiler.spec == "fake:cpu" and profiler.plan.threads == 2
    finally:
        from devices import registry

        registry.unregister("fake:cpu")


def test_fallback_reason_prefers_the_library_error():
    from devices.ort_backend import fallback_reason

    lines = ["[E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] Failed to load library "
             "libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file",
             "[W:onnxruntime:Default, pybind_state.cc:1295 Create] Failed to create CUDAExecutionProvider."]
    assert fallback_reason(lines) == "libcuda.so.1: cannot open shared object file"
    assert fallback_reason(lines[1:]) == "Failed to create CUDAExecutionProvider."
    assert "no reason" in fallback_reason([])
