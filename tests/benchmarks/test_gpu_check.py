"""benchmarks/gpu_check.py without a GPU: its refusal, and its sections with CPU stand-ins.

The GPU run itself needs a GPU host (docs/gpu.md). Here the same section code runs
with ``torch:cpu`` / ``ort:cpu`` in place of the GPU backends, and the parent's
orchestration (time guard, verdicts, JSON report, exit code) runs on canned section
results, so most of the script is executed by the test suite.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gpu_check
import gpu_check_report as rep
from gpu_check_sections import _cache_report, env_section, export_section, profile_backend

from devices import TimingPlan

SCRIPT = Path(gpu_check.__file__).resolve()
QUICK = TimingPlan.quick()
ARCHS = {"nb201": ["|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"],
         "fbnet": ["0-1-2-3-4-5-6-7-8-0-1-2-3-4-5-6-7-8-0-1-2-3"]}


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a GPU host
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_refuses_without_a_gpu_in_one_sentence(tmp_path):
    out = tmp_path / "report"
    done = run_script("--out", str(out))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("gpu_check: error: ") and "no usable CUDA GPU" in done.stderr
    assert done.stdout == "" and not out.exists()


@pytest.mark.parametrize("args,words", [
    ((), "--out FOLDER is required"),
    (("--out", "x", "--n", "0"), "--n must be at least 1"),
    (("--out", "x", "--backends", "gpu:9"), "gpu:9"),
    (("--out", "x", "--bogus"), "unrecognized arguments"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, words):
    done = run_script(*args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert words in done.stderr


# ---- sections, with CPU backends standing in for the GPU ones ------------------------------
def test_profile_section_measures_two_passes_into_stores(tmp_path):
    updates = []
    res = profile_backend("ort:cpu", ARCHS, [1, 2], QUICK, 120.0, tmp_path, group=5,
                          on_update=lambda r: updates.append(len(r["measurements"])))
    assert res["status"] == "ok" and res["planned"] == 4 and not res["failures"]
    first, second = rep.latencies(res, 1), rep.latencies(res, 2)
    assert set(first) == set(second) and len(first) == 4
    assert {k[1] for k in first} == {1, 2} and {k[0] for k in first} == {"nb201", "fbnet"}
    assert all(v > 0 for v in first.values())
    assert res["passes"]["1"]["stored_rows"] == res["passes"]["2"]["stored_rows"] == 4
    assert (tmp_path / "ort-cpu-pass1.sqlite").is_file() and updates[-1] == 8
    # pass 2 reuses the modules' ONNX exports: its preparation is cheaper
    setup = {p: sum(r["setup_s"] for r in res["measurements"] if r["pass"] == p) for p in (1, 2)}
    assert setup[2] < setup[1]
    assert res["cache"] == {"kind": None, "verdict": "ok"} and "providers" not in res
    assert rep.backend_verdict(res) == "ok"
    lines = rep.profile_table({"ort:cpu": res}, None)
    assert len(lines) == 1 + 4 and all("ort:cpu" in line for line in lines[1:])


def test_time_guard_skips_what_does_not_fit(tmp_path):
    res = profile_backend("torch:cpu", ARCHS, [1], QUICK, 0.0, tmp_path)
    assert res["measurements"] == [] and len(res["skipped"]) == 2
    assert all(s["reason"].startswith("time guard") for s in res["skipped"])
    assert rep.backend_verdict(res).startswith("nothing was measured: time guard")


def test_unavailable_backend_is_a_reason_not_an_exception(tmp_path):
    res = profile_backend("torch:cuda", ARCHS, [1], QUICK, 60.0, tmp_path)
    assert res["measurements"] == [] and "torch.cuda.is_available() is False" in res["status"]
    assert rep.backend_verdict(res) == res["status"]


def test_cache_report_compares_the_passes():
    measured = {"measurements": [{"pass": 2}] * 3}
    snaps = {1: {"builds": 3, "engines": 3, "hits": 0}, 2: {"builds": 3, "engines": 3, "hits": 3}}
    assert _cache_report("tensorrt", snaps, measured)["verdict"] == "ok"
    snaps[2]["builds"] = 5
    assert "rebuilt 2 tensorrt engine(s)" in _cache_report("tensorrt", snaps, measured)["verdict"]
    files = {"/c/m1/a.engine": (1, 10), "/c/m2/b.engine": (2, 10)}
    same = {1: {"files": files}, 2: {"files": dict(files)}}
    report = _cache_report("ort:tensorrt", same, measured)
    assert report["verdict"] == "ok" and report["model_folders"] == 2
    changed = {1: {"files": files}, 2: {"files": {**files, "/c/m2/b.engine": (3, 11)}}}
    assert "rebuilt 1 ort-tensorrt" in _cache_report("ort:tensorrt", changed, measured)["verdict"]


def test_env_section_fingerprints_what_runs_and_says_why_not():
    res = env_section(["torch:cpu", "ort:cpu", "torch:cuda"])
    assert res["environment"]["torch"] and res["environment"]["cuda_available"] is False
    specs = {row["spec"] for row in res["available"]}
    assert {"torch:cpu", "ort:cpu", "tensorrt:0"} <= specs
    assert res["backends"]["ort:cpu"]["fingerprint"]["provider"] == "CPUExecutionProvider"
    assert res["backends"]["torch:cuda"] == {
        "available": False,
        "reason": "torch:cuda:0 needs a CUDA GPU, but torch.cuda.is_available() is False on this machine"}


@pytest.mark.slow
def test_export_section_exports_and_reports_each_runtime(tmp_path):
    res = export_section(tmp_path, "ort:cpu", 0, QUICK)
    exp = res["export"]
    assert Path(exp["path"]).is_file() and exp["file_bytes"] > 0 and exp["latency_ms"] > 0
    assert exp["output_scale"] > 1e-4  # batch-norm statistics filled: logits not ~1e-8
    # no CUDA here: every GPU runtime says why it did not run, and the section says so
    assert res["variants"] and all("skipped" in v for v in res["variants"].values())
    assert res["status"].startswith("no GPU runtime ran the exported file")


def test_worker_process_hands_back_its_result_and_is_stopped_on_time(tmp_path):
    args = gpu_check.parse_args(["--out", str(tmp_path / "o"), "--n", "1", "--batches", "1",
                                 "--backends", "torch:cpu", "--quick-timing"])
    res, failure = gpu_check.run_worker("profile", args, tmp_path, 240.0, budget_s=120.0,
                                        extra=["--spec", "torch:cpu"], name="p")
    assert failure is None and res["status"] == "ok" and len(rep.latencies(res, 2)) == 2
    res, failure = gpu_check.run_worker("profile", args, tmp_path, 1.0, budget_s=120.0,
                                        extra=["--spec", "torch:cpu"], name="slow")
    assert failure == "did not finish within 1 s and was stopped by the time guard"


# ---- the parent's orchestration on canned section results ---------------------------------
def _canned(kind, spec, fail_tensorrt):
    if kind == "env":
        return {"environment": {"torch": "2.x", "gpus": ["Fake GPU"]}, "available": [],
                "backends": {s: {"available": True, "fingerprint": {"id": "f" + s, "label": s}}
                             for s in gpu_check.GPU_SPECS}}
    if kind == "export":
        return {"status": "ok", "arch": "0-1", "export": {"file_bytes": 10}, "variants": {
            "ort:cuda fp32 (file)": {"precision": "fp32", "max_abs_diff": 1e-6, "latency_ms": 0.2}}}
    rows = [{"pass": p, "space": "nb201", "batch": 1, "arch": f"a{i}", "latency_ms": 1.0 + i,
             "setup_s": 0.1} for p in (1, 2) for i in range(3)]
    res = {"spec": spec, "status": "ok", "planned": 3, "measurements": rows, "failures": [],
           "passes": {"1": {"wall_s": 3.0}, "2": {"wall_s": 1.0}}, "precision": "fp32",
           "cache": {"kind": None, "verdict": "ok"}}
    if spec == "tensorrt" and fail_tensorrt:
        res["cache"] = {"kind": "tensorrt", "verdict": "the second pass rebuilt 3 tensorrt engine(s)"}
    return res


@pytest.mark.parametrize("fail_tensorrt", [False, True])
def test_run_check_prints_and_saves_every_section(tmp_path, monkeypatch, capsys, fail_tensorrt):
    calls = []

    def fake_worker(kind, args, work, timeout_s, budget_s=None, extra=(), name=None):
        spec = extra[1] if extra else None
        calls.append((kind, spec, round(timeout_s)))
        return _canned(kind, spec, fail_tensorrt), None

    def fake_child(cmd, timeout_s, log_path):
        return 0, "[6/7] audit\n[7/7] export the 2 front network(s)\n k arch\n 0 r12|c8\ndone in 40 s\n"

    monkeypatch.setattr(gpu_check, "run_worker", fake_worker)
    monkeypatch.setattr(gpu_check, "run_child", fake_child)
    args = gpu_check.parse_args(["--out", str(tmp_path / "out"), "--budget-s", "360"])
    code = gpu_check.run_check(args)
    printed = capsys.readouterr().out.splitlines()
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["log"] == printed  # everything printed is in the JSON
    assert [c[0] for c in calls] == ["env", "profile", "profile", "profile", "profile", "export"]
    assert all(c[2] > 0 for c in calls)
    assert set(report["sections"]) == {"environment", "profiling", "export", "pipeline"}
    assert report["sections"]["pipeline"]["final_table"][0].startswith("[7/7]")
    summary = report["summary"]
    assert list(summary) == [*gpu_check.GPU_SPECS, "export", "pipeline"]
    if fail_tensorrt:
        assert code == 1 and summary["tensorrt"] == "the second pass rebuilt 3 tensorrt engine(s)"
    else:
        assert code == 0 and set(summary.values()) == {"ok"}
    assert printed[-len(summary):] == [f"  {line}" for line in rep.summary_lines(summary)]


def test_run_check_skips_what_the_time_guard_cannot_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "run_worker",
                        lambda kind, *a, **k: (_canned(kind, None, False), None))
    monkeypatch.setattr(gpu_check, "run_child", lambda *a: pytest.fail("no time for the pipeline"))
    args = gpu_check.parse_args(["--out", str(tmp_path), "--budget-s", "30"])
    assert gpu_check.run_check(args) == 1
    summary = json.loads((tmp_path / "gpu_check.json").read_text())["summary"]
    assert all(v.startswith("skipped by the time guard") for k, v in summary.items()
               if k != "environment")


def test_pipeline_settings_are_accepted_by_this_cli():
    from hwnas.cli import build_parser
    from hwnas.cli.search_cmd import single_search_flags

    args = gpu_check.pipeline_args()
    assert args[:len(gpu_check.PIPELINE_ARGS)] == list(gpu_check.PIPELINE_ARGS)
    parsed = build_parser().parse_args(["search", "--device", "torch:cuda", "--out", "x", *args])
    assert single_search_flags(parsed) == [] and parsed.quick_timing and parsed.active_measurements == 0
