"""TensorRT precision logic, checked with stand-in modules (the real engine needs a GPU)."""

from types import SimpleNamespace

import pytest

from devices.tensorrt_backend import _version, strongly_typed_fp16


def fake_trt(version: str, fp16_flag: bool = True) -> SimpleNamespace:
    flags = SimpleNamespace(FP16=1) if fp16_flag else SimpleNamespace()
    return SimpleNamespace(__version__=version, BuilderFlag=flags)


@pytest.mark.parametrize("version,flag,strong", [
    ("8.6.1", True, False),       # weak typing + FP16 builder flag
    ("10.3.0", True, False),
    ("10.12.0.36", True, True),   # weak typing deprecated: fp16 graph, strongly typed
    ("11.0.0", False, True),      # FP16 flag removed
    ("10.0.1", False, True),      # no flag at all: only strong typing can give fp16
])
def test_fp16_comes_from_the_graph_on_new_tensorrt(version, flag, strong):
    assert strongly_typed_fp16(fake_trt(version, flag)) is strong


def test_version_parsing_is_lenient():
    assert _version(fake_trt("10.12.0.36")) == (10, 12)
    assert _version(fake_trt("11")) == (11, 0)
    assert _version(SimpleNamespace()) == (0, 0)
    assert _version(fake_trt("dev")) == (0, 0)
