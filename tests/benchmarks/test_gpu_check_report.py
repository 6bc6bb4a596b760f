"""The GPU check's bookkeeping on made-up results: time guard, agreement, ratios, verdicts."""

import random

import pytest

import gpu_check_report as rep


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(pass_no, values, space="nb201", batch=1):
    return [{"pass": pass_no, "space": space, "batch": batch, "arch": f"a{i}", "latency_ms": v,
             "setup_s": 0.5} for i, v in enumerate(values)]


def result(first, second, **extra):
    return {"status": "ok", "measurements": rows(1, first) + rows(2, second), **extra}


def test_deadline_counts_down_and_says_what_fits():
    clock = FakeClock()
    deadline = rep.Deadline(60, clock)
    assert deadline.fits(60) and not deadline.fits(60.1)
    clock.now += 45
    assert deadline.remaining() == 15 and deadline.fits(15) and not deadline.fits(16)
    sub = deadline.sub(100)  # never outlives its parent
    assert sub.remaining() == 15
    clock.now += 20
    assert deadline.remaining() == 0 and not deadline.fits(0)


def test_share_within_counts_relative_agreement():
    first = {("s", 1, "a"): 1.0, ("s", 1, "b"): 2.0, ("s", 1, "c"): 4.0, ("s", 1, "d"): 1.0}
    second = {("s", 1, "a"): 1.04, ("s", 1, "b"): 2.03, ("s", 1, "c"): 4.5}  # d not re-measured
    assert rep.share_within(first, second, 0.05) == pytest.approx(2 / 3)
    assert rep.share_within(first, second, 0.02) == pytest.approx(1 / 3)  # only b (1.5%)
    assert rep.share_within(first, {("s", 1, "c"): 3.9}, 0.02) == 0.0  # 2.5% off
    assert rep.share_within(first, {}, 0.05) is None


def test_ratio_stats_pairs_by_key():
    rng = random.Random(0)
    torch_ms = {("s", 1, f"a{i}"): rng.uniform(0.5, 2.0) for i in range(10)}
    trt_ms = {k: v * (0.4 if i % 2 else 0.5) for i, (k, v) in enumerate(torch_ms.items())}
    trt_ms[("s", 1, "only-here")] = 1.0
    stats = rep.ratio_stats(trt_ms, torch_ms)
    assert stats["n"] == 10 and stats["min"] == pytest.approx(0.4) and stats["max"] == pytest.approx(0.5)
    assert stats["median"] == pytest.approx(0.45)
    assert rep.ratio_stats({("x", 1, "a"): 1.0}, torch_ms) is None


def test_group_rows_per_space_and_batch_with_reference():
    res = {"measurements": rows(1, [1.0, 2.0]) + rows(2, [1.01, 2.5]) + rows(1, [8.0], batch=32)}
    ref = {"measurements": rows(1, [2.0, 4.0]) + rows(1, [16.0], batch=32)}
    out = rep.group_rows(res, ref)
    assert [(r["space"], r["batch"], r["n"]) for r in out] == [("nb201", 1, 2), ("nb201", 32, 1)]
    b1 = out[0]
    assert (b1["p10_min_ms"], b1["p10_max_ms"], b1["pass2_n"]) == (1.0, 2.0, 2)
    assert b1["within_5"] == 0.5 and b1["ratio"]["median"] == 0.5
    assert out[1]["within_5"] is None and out[1]["pass2_n"] == 0


def test_throughput_rows_rate_and_setup_share():
    res = {"measurements": rows(1, [1.0] * 6) + rows(2, [1.0] * 6),
           "passes": {"1": {"wall_s": 30.0, "build_s": 12.0}, "2": {"wall_s": 6.0}}}
    first, second = rep.throughput_rows(res)
    assert first["archs_per_min"] == 12.0 and first["setup_share"] == pytest.approx(0.1)
    assert second["archs_per_min"] == 60.0 and second["setup_share"] == pytest.approx(0.5)
    assert first["build_s"] == 12.0 and second["build_s"] is None


def test_verdicts():
    assert rep.backend_verdict(None).startswith("no result")
    assert rep.backend_verdict({"status": "ort:cuda requested but ONNX Runtime fell back"}) == \
        "ort:cuda requested but ONNX Runtime fell back"
    assert rep.backend_verdict(result([1.0, 2.0], [1.0, 2.0], planned=2)) == "ok"
    partial = rep.backend_verdict(result([1.0, 2.0], [1.0], planned=4))
    assert partial == "ok (time guard: pass 1 measured 2 of 4; pass 2 re-measured 1 of 2)"
    assert rep.is_ok(partial) and not rep.is_ok("okay, not really")
    failed = result([1.0], [1.0], failures=[{"reason": "TensorRT could not parse"}])
    assert rep.backend_verdict(failed).startswith("1 network(s) could not be measured")
    cache = result([1.0], [1.0], cache={"verdict": "the second pass rebuilt 1 engine"})
    assert rep.backend_verdict(cache) == "the second pass rebuilt 1 engine"
    nothing = {"status": "ok", "measurements": [], "skipped": [{"reason": "time guard (0 s left)"}]}
    assert rep.backend_verdict(nothing) == "nothing was measured: time guard (0 s left)"


def test_engine_cache_verdict():
    assert rep.engine_cache_verdict("tensorrt", 40, 0, 40) == "ok"
    assert "rebuilt 3 tensorrt engine(s) for 40" in rep.engine_cache_verdict("tensorrt", 40, 3, 40)
    assert "stayed empty" in rep.engine_cache_verdict("ort-tensorrt", 0, 0, 40)
    assert rep.engine_cache_verdict("tensorrt", 0, 0, 0) == "ok"  # nothing re-measured


def test_plan_chunks_cover_every_space_and_batch_first():
    archs = {"nb201": [f"n{i}" for i in range(7)], "fbnet": [f"f{i}" for i in range(7)]}
    chunks = rep.plan_chunks(archs, [1, 32], group=5)
    assert [(s, b, len(a)) for s, b, a in chunks[:4]] == [("nb201", 1, 5), ("fbnet", 1, 5),
                                                          ("nb201", 32, 5), ("fbnet", 32, 5)]
    assert [(s, b, a) for s, b, a in chunks[4:]] == [("nb201", 1, ["n5", "n6"]), ("fbnet", 1, ["f5", "f6"]),
                                                     ("nb201", 32, ["n5", "n6"]), ("fbnet", 32, ["f5", "f6"])]
    assert sum(len(a) for _, _, a in chunks) == 28


def test_tables_and_text_helpers():
    lines = rep.format_table([{"a": "x", "b": "long value"}], [("A", "a"), ("Bee", "b")])
    assert lines == ["A  Bee", "x  long value"]
    assert rep.summary_lines({"tensorrt": "ok", "ort:cuda": "failed"}) == ["tensorrt  ok",
                                                                           "ort:cuda  failed"]
    text = "[6/7] audit\nrow\n[7/7] export\n k arch\n 0 r12\n\ndone in 9 s\n"
    assert rep.last_lines(text, "[7/7]") == ["[7/7] export", " k arch", " 0 r12", "done in 9 s"]
    assert rep.last_lines("a\nb\nc", None, limit=2) == ["b", "c"]
    assert rep.final_stage_lines(text) == ["[7/7] export", " k arch", " 0 r12", "done in 9 s"]
    five = "[4/5] budgets\n[5/5] export one file per budget (2)\n k budget_ms\n"
    assert rep.final_stage_lines(five) == ["[5/5] export one file per budget (2)", " k budget_ms"]
    assert rep.final_stage_lines("[1/2] x\nno final stage") == ["[1/2] x", "no final stage"]
    assert rep.first_sentence("Traceback...\n  File x\nRuntimeError: boom\n") == "RuntimeError: boom"
    assert rep.fmt(float("nan")) == "-" and rep.fmt(1.23456) == "1.235" and rep.pct(0.5) == "50%"


def test_profile_table_names_the_reference_ratio():
    torch_res = {"precision": "fp32", "measurements": rows(1, [2.0, 4.0]) + rows(2, [2.0, 4.0])}
    trt_res = {"precision": "fp16", "measurements": rows(1, [1.0, 1.0]) + rows(2, [1.0, 1.3])}
    lines = rep.profile_table({"torch:cuda": torch_res, "tensorrt": trt_res}, "torch:cuda")
    assert lines[0].split()[:2] == ["backend", "precision"] and "/torch:cuda" in lines[0]
    assert "100% / 100% (n=2)" in lines[1] and lines[1].rstrip().endswith("-")
    assert "50% / 50% (n=2)" in lines[2] and "0.38 (0.25-0.50)" in lines[2]
