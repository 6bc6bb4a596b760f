"""Engine caches, checked without a GPU: the TensorRT build is faked, ORT's options are read."""

from pathlib import Path

import pytest

from devices.engine_cache import EngineCache, engine_key, has_dynamic_input, ort_tensorrt_options
from devices.ort_backend import OrtTensorRTProfiler
from devices.tensorrt_backend import TensorRTProfiler


class FakeBuildProfiler(TensorRTProfiler):
    """The real cache logic around a fake build: records what it was asked to build."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.built: list[bytes] = []

    def _cache_context(self):
        return {"tensorrt": "10.16.1", "mode": "fp16-strong", "gpu": "fake", "device": 0}

    def _build_plan(self, onnx_bytes: bytes) -> bytes:
        self.built.append(onnx_bytes)
        return b"engine-of:" + onnx_bytes


def test_second_request_for_the_same_bytes_is_a_cache_hit():
    profiler = FakeBuildProfiler()
    key_a, plan_a = profiler._engine_plan(b"onnx-a")
    key_again, plan_again = profiler._engine_plan(b"onnx-a")
    key_b, _ = profiler._engine_plan(b"onnx-b")
    assert profiler.built == [b"onnx-a", b"onnx-b"]  # a built once, b once
    assert (key_again, plan_again) == (key_a, plan_a) and key_b != key_a
    assert profiler.builds == 2
    assert profiler.engine_cache.stats() == {"folder": None, "entries": 2, "hits": 1, "misses": 2,
                                             "stores": 2}


def test_folder_cache_survives_the_profiler(tmp_path):
    first = FakeBuildProfiler(engine_cache=tmp_path)
    key, plan = first._engine_plan(b"onnx-a")
    assert (tmp_path / f"{key}.engine").read_bytes() == plan
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically
    second = FakeBuildProfiler(engine_cache=tmp_path)
    assert second._engine_plan(b"onnx-a") == (key, plan)
    assert second.built == [] and second.engine_cache.hits == 1


def test_environment_variable_names_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_ENGINE_CACHE", str(tmp_path))
    assert FakeBuildProfiler().engine_cache.folder == tmp_path
    assert OrtTensorRTProfiler().engine_cache == str(tmp_path)


def test_key_depends_on_bytes_and_build_settings():
    base = engine_key(b"x", {"mode": "fp16", "gpu": "H200"})
    assert base == engine_key(b"x", {"gpu": "H200", "mode": "fp16"})  # key order is irrelevant
    assert base != engine_key(b"y", {"mode": "fp16", "gpu": "H200"})
    assert base != engine_key(b"x", {"mode": "fp32", "gpu": "H200"})
    assert base != engine_key(b"x", {"mode": "fp16", "gpu": "H100"})


def test_memory_cache_is_bounded_and_discard_forgets():
    cache = EngineCache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, key.encode())
    assert cache.get("a") is None and cache.get("c") == b"c" and len(cache) == 2
    cache.discard("c")
    assert cache.get("c") is None


def relu_model(batch) -> bytes:
    """A one-node ONNX model whose batch dimension is ``batch`` (an int, or a name: dynamic)."""
    from onnx import TensorProto, helper

    dims = [batch, 4]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_ort_tensorrt_cache_is_one_folder_per_model_shape_and_precision(tmp_path):
    model_a, model_b = relu_model(1), relu_model(2)
    assert ort_tensorrt_options(None, model_a, fp16=True) == {"trt_engine_cache_enable": "False"}
    a16 = ort_tensorrt_options(tmp_path, model_a, fp16=True)
    a32 = ort_tensorrt_options(tmp_path, model_a, fp16=False)
    b16 = ort_tensorrt_options(tmp_path, model_b, fp16=True)
    a16_shape = ort_tensorrt_options(tmp_path, model_a, fp16=True, input_shape=(1, 4))
    assert a16 == ort_tensorrt_options(tmp_path, model_a, fp16=True)
    options = (a16, a32, b16, a16_shape)
    paths = {o["trt_engine_cache_path"] for o in options}
    assert len(paths) == 4 and all(Path(p).is_dir() for p in paths)
    assert {o["trt_timing_cache_path"] for o in options} == {str(tmp_path.resolve() / "ort-tensorrt")}
    assert a16["trt_engine_cache_enable"] == a16["trt_timing_cache_enable"] == "True"


def test_dynamic_batch_model_is_cached_per_shape_or_not_at_all(tmp_path):
    dynamic = relu_model("batch")
    assert has_dynamic_input(dynamic) and not has_dynamic_input(relu_model(1))
    assert has_dynamic_input(b"not onnx")
    assert ort_tensorrt_options(tmp_path, dynamic, fp16=True) == {"trt_engine_cache_enable": "False"}
    b1 = ort_tensorrt_options(tmp_path, dynamic, fp16=True, input_shape=(1, 4))
    b32 = ort_tensorrt_options(tmp_path, dynamic, fp16=True, input_shape=(32, 4))
    assert b1["trt_engine_cache_path"] != b32["trt_engine_cache_path"]


@pytest.mark.parametrize("cache", [None, "folder"])
def test_ort_tensorrt_profiler_passes_the_cache_options(tmp_path, monkeypatch, cache):
    monkeypatch.delenv("HWNAS_ENGINE_CACHE", raising=False)
    profiler = OrtTensorRTProfiler(engine_cache=tmp_path if cache else None)
    (name, options), *rest = profiler._providers(relu_model(1), (1, 4))
    assert name == "TensorrtExecutionProvider" and options["trt_fp16_enable"] == "True"
    if cache:
        assert options["trt_engine_cache_enable"] == "True"
        assert options["trt_engine_cache_path"] != profiler._providers(relu_model(2), (2, 4))[0][1][
            "trt_engine_cache_path"]
    else:
        assert options["trt_engine_cache_enable"] == "False"
    assert [r[0] if isinstance(r, tuple) else r for r in rest] == ["CUDAExecutionProvider",
                                                                   "CPUExecutionProvider"]
