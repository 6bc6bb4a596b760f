"""ONNX export: every space exports and matches torch, metadata round trip, bad input refused
with no file left behind, CLI exit codes.

The default exporter is TorchScript at opset 17 (about 1 s each on this machine, against
10-30 s for the dynamo exporter), the converter profiling uses; one test runs the
default path end to end with a measurement of the file, one the dynamo exporter.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import devices
import spaces
from hwnas import export, onnx_meta
from hwnas.cli import main
from hwnas.export import ExportError, ParityError, WeightsMismatch, export_arch
from spaces import InvalidArchitecture

SPACES = {"nb201": {}, "fbnet": {"stem": "cifar"}, "fbnetv2": {"preset": "tiny"}, "nao": {}}
# FBNet's 22 layers are slow to build and export on a shared CPU: mostly skips, but every
# kind of block once (plain, grouped + channel shuffle, expanded; 3x3 and 5x5).
FBNET_LIGHT = "0-8-8-8-2-8-8-8-5-8-8-8-7-8-8-8-1-8-8-8-4-3"


def _space(name):
    return spaces.get(name, **SPACES[name])


def _ort_run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def _calibrated(space, arch):
    """The built network with batch-norm statistics of its own random inputs, as training
    would leave them: with the init's unit statistics some nets output ~1e-9 (FBNet) or
    ~600 (NB201), which would make a parity check empty or dominated by rounding."""
    model = space.build(arch)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(16, *space.input_shape()))
    return model.eval()


def _only_file(folder, name="model.onnx"):
    """The export left exactly one file (no external data, no temp file)."""
    assert sorted(os.listdir(folder)) == [name]


def _lut_predictor(space, path, device_id):
    """A real (additive LUT) predictor file, fitted on made-up latencies of one device."""
    from latency import predictors

    archs = space.sample_many(12, 7)
    pred = predictors.create("lut", space).fit(archs, [1.0 + sum(a.choices) / 10 for a in archs])
    pred.set_device(device_id, "some device")
    pred.save(path)
    return pred


# ---- every space -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_space_exports_checks_and_matches_torch(name, tmp_path):
    space = _space(name)
    arch = space.from_string(FBNET_LIGHT) if name == "fbnet" else space.sample(3)
    model = _calibrated(space, arch)
    if name == "fbnet":  # HW-NAS-Bench inits the classifier near zero (std 1e-3)
        torch.nn.init.normal_(model.classifier.weight, std=0.05)
    path = tmp_path / "model.onnx"
    report = export_arch(space, arch, path, model=model, measure=False, exporter="torchscript",
                         space_kwargs=SPACES[name])

    assert report.checker_ok and report.exporter == "torchscript"
    assert set(report.parity) == {1, 8}
    assert report.output_scale > 1e-2, "outputs this small would make the parity check empty"
    assert report.parity_max_abs_diff <= report.parity_tolerance <= 1e-4 + 1e-6 * report.output_scale
    _only_file(tmp_path)
    assert report.file_bytes == path.stat().st_size > 0

    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [i.name for i in loaded.graph.input] == ["input"]
    assert [o.name for o in loaded.graph.output] == ["logits"]
    assert loaded.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    # a batch size the parity check did not use still runs and matches torch
    x = np.random.default_rng(1).standard_normal((3, *space.input_shape())).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = _ort_run(path, x)
    assert got.shape == (3, space.default_num_classes)
    np.testing.assert_allclose(got, expected, atol=report.parity_tolerance, rtol=0)

    meta = onnx_meta.read_metadata(path)
    assert space.from_string(meta["arch"]) == arch
    assert tuple(meta["choices"]) == arch.choices
    assert meta["space"] == space.key and meta["space_name"] == name
    assert spaces.get(meta["space_name"], **meta["space_kwargs"]).key == space.key
    cost = space.cost(arch)
    assert (meta["macs"], meta["params"]) == (cost.macs, cost.params) == (report.macs, report.params)
    assert meta["exporter"] == "torchscript" and meta["opset"] == 17 == loaded.opset_import[0].version


def test_default_export_measures_the_file_and_stamps_everything(tmp_path):
    space = _space("fbnetv2")
    arch = space.sample(0)
    profiler = devices.get("ort:cpu", plan=devices.TimingPlan.quick())
    pred = _lut_predictor(space, tmp_path / "pred.pt", profiler.fingerprint_id)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "model.onnx"
    report = export_arch(space, arch, path, model=space.build(arch), device=profiler,
                         predictor=tmp_path / "pred.pt",
                         accuracy=91.25, space_kwargs=SPACES["fbnetv2"],
                         metadata={"trained_on": "nothing"})

    assert report.exporter == "torchscript" and report.fallback_reason is None
    assert report.parity_max_abs_diff <= 1e-4 and report.checker_ok
    _only_file(out)
    assert report.latency_ms > 0 and report.latency_statistic == "p10"
    assert report.latency_measured_on == "file"
    assert report.device == profiler.label and report.device_fingerprint_id == profiler.fingerprint_id
    assert report.predicted_latency_ms == pytest.approx(float(pred.predict([arch])[0]), rel=1e-12)
    assert report.prediction_error == pytest.approx(report.predicted_latency_ms / report.latency_ms - 1)

    meta = onnx_meta.read_metadata(path)
    expected = {"arch": space.to_string(arch), "accuracy": 91.25, "trained_on": "nothing",
                "latency_ms": report.latency_ms, "device": profiler.label,
                "device_fingerprint_id": profiler.fingerprint_id, "exporter": "torchscript",
                "opset": 17, "latency_measured_on": "file",
                "predicted_latency_ms": report.predicted_latency_ms,
                "input_shape": list(space.input_shape()), "num_classes": 10}
    assert {k: meta[k] for k in expected} == expected
    assert meta["hwnas_version"] == __import__("hwnas").__version__
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(space.input_shape())


class DataDependent(torch.nn.Module):
    """A branch on a tensor's value: torch.export (dynamo) refuses it, tracing takes it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        x = x.flatten(1)
        if bool((x * x).sum() >= 0):
            return self.fc(x)
        return -self.fc(x)


def test_dynamo_is_the_fallback_and_its_failure_is_one_sentence(tmp_path):
    space = _space("fbnetv2")
    report = export_arch(space, space.sample(0), tmp_path / "model.onnx", model=DataDependent(),
                         measure=False)
    assert report.exporter == "torchscript" and report.fallback_reason is None
    assert onnx_meta.read_metadata(tmp_path / "model.onnx")["exporter"] == "torchscript"
    with pytest.raises(ExportError, match="dynamo: .*torch.export"):
        export_arch(space, space.sample(0), tmp_path / "strict.onnx", model=DataDependent(),
                    measure=False, exporter="dynamo", opset=18)
    _only_file(tmp_path)


def test_dynamo_export_at_a_newer_opset(tmp_path):
    space = _space("fbnetv2")
    report = export_arch(space, space.sample(0), tmp_path / "model.onnx", measure=False,
                         exporter="dynamo", opset=20, untrained=True)
    assert report.exporter == "dynamo" and report.opset == 20
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == 20


# ---- metadata --------------------------------------------------------------------------
def test_metadata_round_trip_is_typed_and_keeps_foreign_entries():
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "someone"
    values = {"space": "fbnetv2:tiny", "space_kwargs": {"preset": "tiny"}, "choices": [0, 2, 1],
              "macs": 123456789012, "latency_ms": 0.1 + 0.2, "opset": 20, "accuracy": None,
              "note": 7, "words": "7 ms"}
    onnx_meta.write_metadata(model, values)
    onnx_meta.write_metadata(model, {**values, "opset": 21})  # rewriting replaces, never duplicates
    got = onnx_meta.read_metadata(model)
    assert got == {"space": "fbnetv2:tiny", "space_kwargs": {"preset": "tiny"}, "choices": [0, 2, 1],
                   "macs": 123456789012, "latency_ms": 0.1 + 0.2, "opset": 21, "note": 7,
                   "words": "7 ms"}  # foreign entries keep their types too
    keys = [p.key for p in model.metadata_props]
    assert keys.count("hwnas.opset") == 1 and "hwnas.accuracy" not in keys
    assert ("author", "someone") in [(p.key, p.value) for p in model.metadata_props]


def test_inspect_refuses_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(onnx_meta.InvalidOnnxFile, match="not an ONNX model"):
        onnx_meta.read_metadata(bad)
    with pytest.raises(onnx_meta.InvalidOnnxFile, match="not a file"):
        onnx_meta.read_metadata(tmp_path / "missing.onnx")


# ---- weights ---------------------------------------------------------------------------
def test_weights_are_loaded_and_a_wrong_file_is_refused_naming_the_key(tmp_path):
    space = _space("nb201")
    rest = "|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    arch = space.from_string("|nor_conv_3x3~0" + rest)
    other = space.from_string("|nor_conv_1x1~0" + rest)  # edge 0: 1x1 instead of 3x3 conv
    torch.manual_seed(5)
    trained = space.build(arch)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    good, wrong = tmp_path / "good.pt", tmp_path / "wrong.pt"
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, good)
    torch.save(space.build(other).state_dict(), wrong)

    out = tmp_path / "out"
    out.mkdir()
    report = export_arch(space, arch, out / "model.onnx", weights=good, measure=False,
                         exporter="torchscript")
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = trained.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort_run(out / "model.onnx", x), expected,
                               atol=report.parity_tolerance, rtol=0)

    with pytest.raises(WeightsMismatch, match=r"key 'cells\.0\.edges\.0.*shape \[16, 16, 1, 1\] in the "
                                              r"weights but \[16, 16, 3, 3\]") as info:
        export_arch(space, arch, out / "wrong.onnx", weights=wrong, measure=False, exporter="torchscript")
    assert "\n" not in str(info.value)
    state = trained.state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsMismatch, match="unexpected key 'extra.weight'"):
        export_arch(space, arch, out / "wrong.onnx", weights=state, measure=False)
    del state["extra.weight"], state[next(iter(state))]
    with pytest.raises(WeightsMismatch, match="is missing"):
        export_arch(space, arch, out / "wrong.onnx", weights=state, measure=False)
    (tmp_path / "junk.pt").write_text("not torch")
    with pytest.raises(WeightsMismatch, match="not a torch weights file"):
        export_arch(space, arch, out / "wrong.onnx", weights=tmp_path / "junk.pt", measure=False)
    _only_file(out)


# ---- failures leave nothing behind -----------------------------------------------------
class Noisy(torch.nn.Module):
    """Adds fresh noise on every call: torch and ONNX Runtime can never agree."""

    def forward(self, x):
        return x.flatten(1)[:, :10] + torch.rand_like(x.flatten(1)[:, :10])


def test_failed_parity_leaves_no_file_and_keeps_an_existing_target(tmp_path):
    space = _space("fbnetv2")
    path = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="differs from torch"):
        export_arch(space, space.sample(0), path, model=Noisy(), measure=False, exporter="torchscript")
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"previous model")
    with pytest.raises(ParityError):
        export_arch(space, space.sample(0), path, model=Noisy(), measure=False, exporter="torchscript")
    assert path.read_bytes() == b"previous model"
    _only_file(tmp_path)


def test_failed_write_removes_the_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    import spaces.core.files

    monkeypatch.setattr(spaces.core.files.os, "replace", refuse)
    space = _space("fbnetv2")
    with pytest.raises(ExportError, match="No space left on device"):
        export_arch(space, space.sample(0), tmp_path / "model.onnx", measure=False,
                    exporter="torchscript", untrained=True)
    assert os.listdir(tmp_path) == []


def test_bad_input_is_refused_before_any_work(tmp_path):
    nb201, fbnet = _space("nb201"), _space("fbnet")
    fbnet_string = fbnet.to_string(fbnet.sample(0))
    with pytest.raises(InvalidArchitecture):
        export_arch(nb201, fbnet_string, tmp_path / "m.onnx", measure=False)
    with pytest.raises(InvalidArchitecture, match="belongs to space 'fbnet'"):
        export_arch(nb201, fbnet.sample(0), tmp_path / "m.onnx", measure=False)
    for opset, exporter in ((6, "auto"), (24, "auto"), (21, "torchscript"), (16, "dynamo")):
        with pytest.raises(ExportError, match=f"opset {opset} is not supported"):
            export_arch(nb201, nb201.sample(0), tmp_path / "m.onnx", opset=opset,
                        exporter=exporter, measure=False)
    with pytest.raises(ExportError, match="does not exist"):
        export_arch(nb201, nb201.sample(0), tmp_path / "no" / "m.onnx", measure=False)
    with pytest.raises(ExportError, match="is a folder"):
        export_arch(nb201, nb201.sample(0), tmp_path, measure=False)
    assert os.listdir(tmp_path) == []

    from latency.predictors import PredictorMismatch

    preds = tmp_path.parent / f"{tmp_path.name}-preds"
    preds.mkdir()
    _lut_predictor(nb201, preds / "other-device.pt", "not-this-machine")
    with pytest.raises(PredictorMismatch, match="trained on device"):
        export_arch(nb201, nb201.sample(0), tmp_path / "m.onnx", predictor=preds / "other-device.pt",
                    untrained=True)
    with pytest.raises(PredictorMismatch, match="trained on space 'nb201'"):
        export_arch(fbnet, fbnet.sample(0), tmp_path / "m.onnx", predictor=preds / "other-device.pt",
                    measure=False, untrained=True)
    assert os.listdir(tmp_path) == []


# ---- training --------------------------------------------------------------------------
def test_trained_weights_are_exported_with_their_accuracy(tmp_path):
    from hwnas.evaluators import datasets
    from hwnas.export_train import train_for_export

    space = _space("fbnetv2")
    arch = space.sample(1)
    trained = train_for_export(space, arch, "digits", 2, seed=0)
    assert 50.0 < trained.accuracy <= 100.0 and not trained.module.training
    export_arch(space, arch, tmp_path / "model.onnx", model=trained.module, accuracy=trained.accuracy,
                measure=False, exporter="torchscript", metadata={"trained_on": trained.trained_on})
    meta = onnx_meta.read_metadata(tmp_path / "model.onnx")
    assert meta["accuracy"] == trained.accuracy and meta["trained_on"].startswith("digits")
    # the file holds the trained weights: ONNX Runtime scores the same validation accuracy
    data = datasets.load("digits", space.default_input_size, space.in_channels, seed=0)
    logits = _ort_run(tmp_path / "model.onnx", data.x_val.numpy())
    accuracy = 100.0 * float((logits.argmax(1) == data.y_val.numpy()).mean())
    assert accuracy == pytest.approx(trained.accuracy, abs=100.0 / len(data.y_val) + 1e-9)


# ---- CLI -------------------------------------------------------------------------------
def _cli(capsys, *argv):
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exports_inspects_and_exits_2_on_bad_input(tmp_path, capsys):
    space = _space("nao")
    arch = space.to_string(space.sample(0))
    path = tmp_path / "m.onnx"
    code, _, err = _cli(capsys, "--space", "nao", "--arch", arch, "-o", path, "--no-measure")
    assert code == 2 and "--untrained" in err and not path.exists()
    code, out, _ = _cli(capsys, "--space", "nao", "--arch", arch, "-o", path, "--exporter",
                        "torchscript", "--no-measure", "--untrained")
    assert code == 0 and "onnx.checker" in out and "parity batch 8" in out
    assert "untrained (random)" in out
    code, out, _ = _cli(capsys, "--inspect", path)
    assert code == 0 and arch in out and "logits [batch, 10]" in out

    wrong = tmp_path / "wrong.pt"
    torch.save(space.build(space.sample(1)).state_dict(), wrong)
    fbnet = _space("fbnet")
    bad = {
        "arch of another space": ["--untrained", "--space", "nao", "--arch", fbnet.to_string(fbnet.sample(0)),
                                  "-o", tmp_path / "a.onnx"],
        "wrong weights": ["--space", "nao", "--arch", arch, "--weights", wrong, "-o", tmp_path / "b.onnx",
                          "--no-measure", "--exporter", "torchscript"],
        "unwritable path": ["--untrained", "--space", "nao", "--arch", arch, "-o", tmp_path / "missing" / "c.onnx"],
        "unsupported opset": ["--untrained", "--space", "nao", "--arch", arch, "--opset", "6", "-o", tmp_path / "d.onnx"],
        "unknown space": ["--untrained", "--space", "nope", "--arch", arch, "-o", tmp_path / "e.onnx"],
        "bad space arg": ["--untrained", "--space", "nao", "--space-opt", "colour=1", "--arch", arch, "-o", tmp_path / "g.onnx"],
        "unknown device": ["--untrained", "--space", "nao", "--arch", arch, "--device", "abacus", "-o", tmp_path / "f.onnx"],
        "no output": ["--space", "nao", "--arch", arch],
        "not onnx": ["--inspect", wrong],
    }
    for why, argv in bad.items():
        code, _, err = _cli(capsys, *argv)
        assert code == 2, why
        assert err.startswith("hwnas: error: ") and err.count("\n") == 1, (why, err)
    assert "key 'cells.0" in _cli(capsys, *bad["wrong weights"])[2]
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "wrong.pt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cli_fp16_without_gpu_is_one_sentence_exit_2(tmp_path, capsys):
    space = _space("nao")
    code, _, err = _cli(capsys, "--space", "nao", "--arch", space.to_string(space.sample(0)),
                        "-o", tmp_path / "m.onnx", "--fp16")
    assert code == 2 and "--fp16 builds a TensorRT engine" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_cli_exports_a_run_folder_best_and_pareto_pick(tmp_path, capsys):
    import pandas as pd

    from hwnas.runs import RunFolder

    space = _space("fbnetv2")
    archs = space.sample_many(3, 4)
    run = RunFolder(tmp_path / "run")
    run.start({"space": {"name": "fbnetv2", "kwargs": {"preset": "tiny"}, "key": space.key}}, resume=False)
    run.write_front(pd.DataFrame({"arch": [space.to_string(a) for a in archs],
                                  "accuracy": [90.0, 80.0, 70.0], "macs": [3e6, 2e6, 1e6]}))
    run.write_best({"space": "fbnetv2", "space_kwargs": {"preset": "tiny"}, "space_key": space.key,
                    "choices": list(archs[0].choices), "arch": space.to_string(archs[0]),
                    "metrics": {"accuracy": 90.0}, "num_classes": 7, "input_size": 16})

    fast = ["--exporter", "torchscript", "--no-measure"]
    code, _, err = _cli(capsys, run.path, *fast)
    assert code == 2 and "no trained weights" in err  # random weights need --untrained
    fast.append("--untrained")
    assert _cli(capsys, run.path, *fast)[0] == 0
    meta = onnx_meta.read_metadata(run.best_model_path)
    assert (meta["arch"], meta["num_classes"], meta["metrics"]) == (space.to_string(archs[0]), 7,
                                                                    {"accuracy": 90.0})
    assert meta["trained"] is False and "accuracy" not in meta  # the search's number is not the file's
    assert "not these weights" in meta["accuracy_source"]
    assert _cli(capsys, run.path, "--pick", 2, *fast)[0] == 0
    meta = onnx_meta.read_metadata(run.path / "pareto-2.onnx")
    assert meta["arch"] == space.to_string(archs[2]) and meta["metrics"]["macs"] == 1e6
    code, _, err = _cli(capsys, run.path, "--pick", 3, *fast)
    assert code == 2 and "out of range" in err
    code, _, err = _cli(capsys, tmp_path / "nothing", *fast)
    assert code == 2 and "not a folder" in err


def test_the_stamped_latency_is_a_measurement_of_the_written_file(tmp_path):
    """Measure what ships: the bytes timed are the written graph (metadata aside), and on an
    exact device a fresh measurement of the written file equals the stamp."""
    from tests.hwnas import macs_device

    space = _space("fbnetv2")
    profiler = devices.get(macs_device.SPEC, plan=devices.TimingPlan.quick())
    timed = []
    original = profiler.measure_many

    def spy(networks, *args, **kwargs):
        timed.extend(networks)
        return original(networks, *args, **kwargs)

    profiler.measure_many = spy
    path = tmp_path / "model.onnx"
    report = export_arch(space, space.sample(2), path, device=profiler, untrained=True)
    assert report.latency_measured_on == "file" and len(timed) == 1
    assert isinstance(timed[0], bytes)  # the serialised model, not the torch module
    written = onnx.load(str(path))
    measured = onnx.load_model_from_string(timed[0])
    assert written.graph.SerializeToString() == measured.graph.SerializeToString()
    stamped = onnx_meta.read_metadata(path)
    again = devices.get(macs_device.SPEC, plan=devices.TimingPlan.quick()).measure(path)
    assert stamped["latency_ms"] == report.latency_ms == again.latency_ms
    assert stamped["latency_ms"] == pytest.approx(macs_device.latency_of(stamped["macs"]))


def test_torch_devices_time_the_module_and_say_so(tmp_path):
    space = _space("fbnetv2")
    profiler = devices.get("torch:cpu", plan=devices.TimingPlan.quick())
    report = export_arch(space, space.sample(2), tmp_path / "m.onnx", device=profiler,
                         untrained=True)
    assert report.latency_measured_on == "module"
    assert onnx_meta.read_metadata(tmp_path / "m.onnx")["latency_measured_on"] == "module"


# ---- nothing lost, nothing half-written ---------------------------------------------------
def _nao_export(path, *extra):
    space = _space("nao")
    return ["export", "--space", "nao", "--arch", space.to_string(space.sample(0)), "-o", str(path),
            "--exporter", "torchscript", "--no-measure", "--untrained", *extra]


@pytest.mark.parametrize("target", ["devnull_link", "fifo", "folder", "proc"])
def test_special_targets_are_refused_and_left_as_they_were(tmp_path, capsys, target):
    """The /dev/full case: a device target was once replaced by a regular file (exit 0)."""
    from pathlib import Path

    from tests.hwnas.failures import fails_in_one_sentence

    out = tmp_path / "m.onnx"
    if target == "devnull_link":
        out.symlink_to("/dev/null")
    elif target == "fifo":
        os.mkfifo(out)
    elif target == "folder":
        out.mkdir()
    else:
        out = Path("/proc/hwnas-test.onnx")
    fails_in_one_sentence(capsys, *_nao_export(out), contains="cannot write")
    if target == "devnull_link":
        assert os.readlink(out) == "/dev/null" and os.path.exists("/dev/null")
    elif target == "fifo":
        assert out.exists() and not out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ([] if target == "proc" else ["m.onnx"])


def test_a_full_disk_keeps_the_previous_export(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import digests, fails_in_one_sentence, full_disk

    out = tmp_path / "m.onnx"
    assert main(_nao_export(out)) == 0
    capsys.readouterr()
    before = digests(tmp_path)
    full_disk(monkeypatch)
    fails_in_one_sentence(capsys, *_nao_export(out, "--seed", "3"), contains="No space left")
    assert digests(tmp_path) == before


def test_the_api_refuses_bad_sizes_with_a_hwnas_error(tmp_path):
    space = _space("nao")
    for kwargs in ({"num_classes": 0}, {"num_classes": -1}, {"input_size": 0}):
        with pytest.raises(spaces.InvalidOption):
            export_arch(space, space.sample(0), tmp_path / "m.onnx", measure=False, untrained=True,
                        **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"\x00" * 16])
def test_inspect_refuses_an_empty_or_graphless_file(tmp_path, capsys, content):
    from tests.hwnas.failures import fails_in_one_sentence

    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    fails_in_one_sentence(capsys, "export", "--inspect", path, contains="not an ONNX model")
    assert path.read_bytes() == content


def test_a_cell_whose_output_ignores_its_input_exports_and_passes_parity(tmp_path):
    """A degenerate but valid NB201 cell: the file keeps its input (every backend can feed
    it), ONNX Runtime agrees with torch at batch 1 and 8, and it is timed like any other."""
    space = spaces.get("nb201", C=4, N=1)
    arch = space.from_string("|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|")
    report = export_arch(space, arch, tmp_path / "m.onnx", exporter="torchscript", untrained=True,
                         device=devices.get("ort:cpu", plan=devices.TimingPlan.quick()))
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == ["input"]
    assert set(report.parity) == {1, 8} and report.parity_max_abs_diff <= report.parity_tolerance
    assert report.latency_ms > 0 and report.latency_measured_on == "file"
