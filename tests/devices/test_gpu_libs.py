"""Finding and loading the TensorRT/CUDA libraries ONNX Runtime's providers need (no GPU here)."""

from devices import gpu_libs
from devices.fingerprint import cudnn_version


def test_library_files_are_the_sonames_in_load_order(tmp_path):
    for name in ("libnvonnxparser.so.10", "libnvinfer.so.10", "libnvinfer.so.10.16.1",
                 "libnvinfer_plugin.so.10", "libnvinfer.so.11", "libnvinfer_lean.so.10",
                 "libnvinfer_builder_resource.so.10.16.1"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in gpu_libs.library_files(tmp_path, 10)] == [
        "libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10"]
    # without a wanted major the highest is taken; missing libraries are left out
    assert [p.name for p in gpu_libs.library_files(tmp_path)] == [
        "libnvinfer.so.11", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10"]


def test_preload_reports_unloadable_files_instead_of_raising(tmp_path, monkeypatch):
    (tmp_path / "libnvinfer.so.10").write_bytes(b"not an ELF file")
    monkeypatch.setattr(gpu_libs, "tensorrt_lib_dir", lambda: tmp_path)
    monkeypatch.setattr(gpu_libs, "ort_tensorrt_majors", lambda: {"libnvinfer": 10})
    report = gpu_libs.preload_tensorrt()
    assert report["loaded"] == [] and len(report["errors"]) == 1
    assert report["errors"][0].startswith("libnvinfer.so.10:")


def test_preload_names_a_version_mismatch(tmp_path, monkeypatch):
    (tmp_path / "libnvinfer.so.11").write_bytes(b"")
    monkeypatch.setattr(gpu_libs, "tensorrt_lib_dir", lambda: tmp_path)
    monkeypatch.setattr(gpu_libs, "ort_tensorrt_majors", lambda: {"libnvinfer": 10})
    report = gpu_libs.preload_tensorrt()
    assert report["errors"] == [f"{tmp_path} has no libnvinfer.so.10 (it has libnvinfer.so.11)"]


def test_missing_libs_wheel_is_reported(monkeypatch):
    monkeypatch.setattr(gpu_libs, "tensorrt_lib_dir", lambda: None)
    report = gpu_libs.preload_tensorrt()
    assert report["loaded"] == [] and "tensorrt_libs" in report["errors"][0]


def test_cpu_target_needs_nothing():
    assert gpu_libs.preload_for_ort("cpu") == {}


def test_version_decoding():
    assert gpu_libs.decode_inferlib_version(101601) == "10.16.1"
    assert gpu_libs.decode_inferlib_version(8601) == "8.6.1"
    assert cudnn_version(92400) == "9.24.0" and cudnn_version(8902) == "8.9.2"
    assert cudnn_version(None) is None
