"""Real timing of tiny networks on torch:cpu and ort:cpu, fingerprints, GPU backends when present."""

import numpy as np
import pytest
import torch

import devices
from devices import Measurement, TimingPlan
from devices.fingerprint import fingerprint_id, short_cpu_name
from devices.onnx_export import export_onnx

QUICK = TimingPlan.quick(rounds=2, calls=6)
SHAPE = (3, 16, 16)


def tiny(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, 10))


def _sane(m: Measurement, batch: int, spec: str) -> None:
    assert isinstance(m, Measurement)
    assert m.n_samples == len(m.samples_ms) == QUICK.rounds * QUICK.calls
    assert all(s > 0 for s in m.samples_ms)
    assert len(set(m.samples_ms)) > 1  # real timings, not a constant
    assert 0 < m.min_ms <= m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.latency_ms == m.p10_ms and m.statistic == "p10"
    assert m.batch == batch and m.input_shape == SHAPE and m.device == spec
    assert m.warmup_iters >= QUICK.warmup_iters and m.setup_s > 0 and m.timing_s > 0
    assert m.threads == 1 and m.precision == "fp32"


@pytest.mark.parametrize("spec", ["torch:cpu", "ort:cpu"])
def test_measure_many_times_each_network(spec):
    profiler = devices.get(spec, plan=QUICK)
    small, big = tiny(4), tiny(64)
    results = profiler.measure_many([small, big], SHAPE, batch=2)
    for m in results:
        _sane(m, 2, spec)
    # 16x more channels in the middle conv: clearly slower, whatever the noise.
    assert results[1].median_ms > results[0].median_ms


@pytest.mark.parametrize("spec", ["torch:cpu", "ort:cpu"])
def test_measure_one_and_statistic_setting(spec):
    m = devices.get(spec, plan=QUICK.updated(statistic="median")).measure(tiny(8), SHAPE)
    assert m.statistic == "median" and m.latency_ms == m.median_ms and m.batch == 1


def test_torch_threads_are_set_while_timing_and_restored():
    before = torch.get_num_threads()
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x * 2

    devices.get("torch:cpu", plan=QUICK, threads=2).measure(Probe(), (4,))
    assert set(seen) == {2}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("spec", ["torch:cpu", "ort:cpu"])
def test_fingerprint_identifies_hardware_software_and_settings(spec):
    profiler = devices.get(spec, threads=1)
    fp = profiler.fingerprint()
    for key in ("cpu_model", "cpu_cores", "threads", "precision", "torch", "backend", "spec"):
        assert fp[key] not in (None, ""), key
    assert fp["torch"] == torch.__version__
    if spec.startswith("ort"):
        import onnxruntime

        assert fp["onnxruntime"] == onnxruntime.__version__
        assert fp["provider"] == "CPUExecutionProvider"
    assert len(fp["id"]) == 12 and fp["id"] == fingerprint_id(fp) == profiler.fingerprint_id
    assert profiler.label == fp["label"] == f"{spec}/1t@{short_cpu_name(fp['cpu_model'])}"
    # Stable across instances, different for another thread count or backend.
    assert devices.get(spec, threads=1).fingerprint_id == fp["id"]
    assert devices.get(spec, threads=2).fingerprint_id != fp["id"]
    other = "ort:cpu" if spec == "torch:cpu" else "torch:cpu"
    assert devices.get(other).fingerprint_id != fp["id"]


def test_onnx_export_is_done_once_per_module_and_leaves_it_unchanged():
    module = tiny(4).train()
    first = export_onnx(module, SHAPE, 1)
    assert export_onnx(module, SHAPE, 1) is first
    assert export_onnx(module, SHAPE, 2) is not first  # another batch is another graph
    assert module.training
    import onnx

    model = onnx.load_from_string(first)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *SHAPE]


def test_ort_matches_torch_output():
    """The exported graph is the same network (so its latency is the network's)."""
    import numpy as np
    import onnxruntime as ort

    module = tiny(8).eval()
    session = ort.InferenceSession(export_onnx(module, SHAPE, 1), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected,
                               rtol=1e-4, atol=1e-5)


def _gpu_specs():
    return [s.spec for s in devices.available() if s.available and s.spec not in ("torch:cpu", "ort:cpu")]


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["torch:cuda:0", "ort:cuda", "ort:tensorrt", "tensorrt:0"])
def test_gpu_backends_time_a_network(spec):
    if spec not in _gpu_specs():
        reason = next(s.reason for s in devices.available() if s.spec == spec)
        pytest.skip(f"{spec} cannot run here: {reason}")
    profiler = devices.get(spec, plan=QUICK)
    m = profiler.measure(tiny(16), SHAPE)
    assert m.n_samples == QUICK.rounds * QUICK.calls and 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    fp = profiler.fingerprint()
    assert fp["gpu_model"] and fp["precision"] == m.precision
    assert spec in profiler.label and fp["gpu_model"] in profiler.label


@pytest.mark.parametrize("spec", ["torch:cpu", "ort:cpu"])
def test_cpu_clock_is_recorded_and_inference_runs_on_the_calling_thread(spec):
    """Each call is also read by the thread's CPU clock. On the least-preempted call the two
    clocks agree, which shows the one-thread inference really runs on the calling thread
    (were it on a worker thread, the caller's CPU time would stay near zero)."""
    wall = devices.get(spec, plan=QUICK).measure(tiny(32), SHAPE)
    cpu_samples = wall.samples_of("cpu")
    assert wall.clock == "wall" and len(cpu_samples) == wall.n_samples
    # the call that ran least disturbed: its CPU time is its wall time when the work is on
    # this thread, and near zero were it on a worker thread
    best = max(c / w for c, w in zip(cpu_samples, wall.samples_ms) if w > 0)
    assert best > 0.2, f"the calling thread's CPU time is {best:.0%} of the wall time at best"
    if best < 0.7:
        pytest.skip(f"every call was preempted (CPU time at most {best:.0%} of wall time): the "
                    f"machine is too loaded to tell where inference runs")
    cpu = devices.get(spec, plan=QUICK.updated(clock="cpu")).measure(tiny(32), SHAPE)
    assert cpu.clock == "cpu" and cpu.samples_ms == cpu.samples_of("cpu")
    assert len(cpu.samples_of("wall")) == cpu.n_samples
    assert cpu.latency_ms == pytest.approx(np.percentile(cpu.samples_ms, 10), rel=1e-4)
    assert devices.get(spec, clock="cpu").label.startswith(f"{spec}/1t-cpuclock@")
    assert devices.get(spec, clock="cpu").fingerprint_id != devices.get(spec).fingerprint_id


def test_cpu_clock_needs_one_thread():
    with pytest.raises(devices.InvalidSetting, match="needs threads=1"):
        devices.get("ort:cpu", clock="cpu", threads=2)


def test_ort_times_an_onnx_file_by_path_bytes_and_proto(tmp_path):
    """What ships is timed: the file's own bytes, its input shape read from the file."""
    import onnx

    module = tiny(8).eval()
    data = export_onnx(module, SHAPE, dynamic_batch=True)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    profiler = devices.get("ort:cpu", plan=devices.TimingPlan.quick())
    for network in (path, str(path), data, onnx.load_model_from_string(data)):
        m = profiler.measure(network)
        assert m.latency_ms > 0 and m.input_shape == SHAPE
        assert m.block_calls >= 1
    assert profiler.measure(path, batch=3).batch == 3  # dynamic batch


def test_measuring_something_that_is_not_a_network_is_one_sentence(tmp_path):
    ort_cpu = devices.get("ort:cpu", plan=devices.TimingPlan.quick())
    with pytest.raises(devices.ProfilingError, match="does not exist"):
        ort_cpu.measure(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(devices.ProfilingError, match="not an ONNX model"):
        ort_cpu.measure(tmp_path / "junk.onnx")
    with pytest.raises(devices.InvalidSetting, match="not int"):
        ort_cpu.measure(42, (3, 8, 8))
    torch_cpu = devices.get("torch:cpu", plan=devices.TimingPlan.quick())
    with pytest.raises(devices.InvalidSetting, match="time an ONNX file on an ONNX Runtime device"):
        torch_cpu.measure(tmp_path / "junk.onnx", (3, 8, 8))
