"""The GPU check's bookkeeping: time guard, pass-to-pass agreement, ratios, verdicts, tables.

Pure functions on the plain dicts the check's sections return (no torch, no
GPU), so every number the check prints can be unit-tested on made-up data.
A section result's ``measurements`` are rows ``{"pass", "space", "arch",
"batch", "latency_ms", "setup_s", ...}``; ``latency_ms`` is the reported
statistic (pooled p10).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from typing import Any, Callable, Sequence

Key = tuple[str, int, str]  # (space, batch, arch)


class Deadline:
    """Seconds left of a fixed budget, and whether a step of a given length still fits."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = float(budget_s)
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return max(0.0, self.budget_s - self.elapsed())

    def fits(self, seconds: float) -> bool:
        """True while ``seconds`` more work ends within the budget."""
        return self.elapsed() + max(0.0, seconds) <= self.budget_s

    def sub(self, budget_s: float) -> "Deadline":
        """A deadline of at most ``budget_s`` that never outlives this one."""
        return Deadline(min(budget_s, self.remaining()), self.clock)


def key_of(row: dict[str, Any]) -> Key:
    return str(row["space"]), int(row["batch"]), str(row["arch"])


def latencies(result: dict[str, Any], pass_no: int = 1) -> dict[Key, float]:
    """(space, batch, arch) -> reported latency of one pass."""
    return {key_of(r): float(r["latency_ms"]) for r in result.get("measurements", [])
            if int(r["pass"]) == pass_no}


def share_within(first: dict[Key, float], second: dict[Key, float], tol: float) -> float | None:
    """Share of the keys in both whose second value is within ``tol`` (relative) of the first."""
    keys = [k for k in first if k in second and first[k] > 0]
    if not keys:
        return None
    return sum(abs(second[k] - first[k]) / first[k] <= tol for k in keys) / len(keys)


def ratio_stats(numerator: dict[Key, float], denominator: dict[Key, float]) -> dict[str, Any] | None:
    """Per-key ratio numerator/denominator over the keys both have: n, median, min, max."""
    values = [numerator[k] / denominator[k] for k in numerator
              if k in denominator and denominator[k] > 0]
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values)}


def _subset(values: dict[Key, float], space: str, batch: int) -> dict[Key, float]:
    return {k: v for k, v in values.items() if k[0] == space and k[1] == batch}


def group_rows(result: dict[str, Any], reference: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (space, batch): n, p10 range, pass-2 within 5% / 2%, ratio to ``reference``."""
    first, second = latencies(result, 1), latencies(result, 2)
    ref = latencies(reference, 1) if reference else {}
    rows = []
    for space, batch in sorted({(k[0], k[1]) for k in first}):
        a, b = _subset(first, space, batch), _subset(second, space, batch)
        ratio = ratio_stats(a, _subset(ref, space, batch)) if ref else None
        rows.append({"space": space, "batch": batch, "n": len(a),
                     "p10_min_ms": min(a.values()), "p10_max_ms": max(a.values()),
                     "pass2_n": sum(k in b for k in a),
                     "within_5": share_within(a, b, 0.05), "within_2": share_within(a, b, 0.02),
                     "ratio": ratio})
    return rows


def throughput_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per pass: measured networks, wall seconds, networks per minute, share of the wall time
    spent preparing (export + session/engine build, from each Measurement's ``setup_s``)."""
    rows = []
    for pass_no, info in sorted((int(p), i) for p, i in result.get("passes", {}).items()):
        measured = [r for r in result.get("measurements", []) if int(r["pass"]) == pass_no]
        wall = float(info.get("wall_s", 0.0))
        setup = sum(float(r.get("setup_s", 0.0)) for r in measured)
        rows.append({"pass": pass_no, "measured": len(measured), "wall_s": wall,
                     "archs_per_min": len(measured) / (wall / 60) if wall > 0 else None,
                     "setup_share": setup / wall if wall > 0 else None,
                     "build_s": info.get("build_s")})
    return rows


def planned_pairs(result: dict[str, Any]) -> int:
    return int(result.get("planned", 0))


def backend_verdict(result: dict[str, Any] | None) -> str:
    """``ok`` (with a note on what the time guard left out) or one sentence saying why not."""
    if not result:
        return "no result came back from this backend's run"
    status = str(result.get("status") or "")
    if status and status != "ok":
        return status
    measured1 = latencies(result, 1)
    failures = result.get("failures", [])
    if not measured1:
        reason = (failures[0]["reason"] if failures else
                  next((s["reason"] for s in result.get("skipped", [])), "nothing was planned"))
        return f"nothing was measured: {reason}"
    if failures:
        return (f"{len(failures)} network(s) could not be measured (the others were); "
                f"first: {failures[0]['reason']}")
    cache = result.get("cache") or {}
    if cache.get("verdict") not in (None, "ok"):
        return str(cache["verdict"])
    providers = result.get("providers") or {}
    if providers.get("verdict") not in (None, "ok"):
        return str(providers["verdict"])
    measured2 = latencies(result, 2)
    planned = planned_pairs(result)
    notes = []
    if planned and len(measured1) < planned:
        notes.append(f"time guard: pass 1 measured {len(measured1)} of {planned}")
    if len(measured2) < len(measured1):
        notes.append(f"pass 2 re-measured {len(measured2)} of {len(measured1)}")
    return "ok" + (f" ({'; '.join(notes)})" if notes else "")


def engine_cache_verdict(kind: str, engines_pass1: int, rebuilt_pass2: int, remeasured: int) -> str:
    """``ok`` when pass 1 left engines in the cache and pass 2 built none, else why not."""
    if remeasured == 0:
        return "ok"  # nothing re-measured: nothing to judge (the verdict notes the cut)
    if engines_pass1 == 0:
        return f"the {kind} engine cache stayed empty in pass 1"
    if rebuilt_pass2:
        return (f"the second pass rebuilt {rebuilt_pass2} {kind} engine(s) for {remeasured} "
                f"re-measured network(s): the engine cache was not used")
    return "ok"


def is_ok(verdict: str) -> bool:
    return verdict == "ok" or verdict.startswith("ok (")


def summary_lines(verdicts: dict[str, str]) -> list[str]:
    width = max((len(name) for name in verdicts), default=0)
    return [f"{name:<{width}}  {verdict}" for name, verdict in verdicts.items()]


def fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    """Plain-text table: ``columns`` are (header, key); values already formatted as text."""
    cells = [[str(row.get(key, "")) for _, key in columns] for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    return lines


def profile_table(results: dict[str, dict[str, Any]], reference: str | None) -> list[str]:
    """The section-2 table: per backend and (space, batch), what the check measured."""
    ref = results.get(reference) if reference else None
    rows = []
    for spec, result in results.items():
        if not result or not latencies(result, 1):
            continue
        for row in group_rows(result, ref if spec != reference else None):
            ratio = row["ratio"]
            rows.append({
                "backend": spec, "precision": str(result.get("precision", "?")),
                "space": row["space"], "batch": str(row["batch"]), "n": str(row["n"]),
                "p10": f"{fmt(row['p10_min_ms'])}-{fmt(row['p10_max_ms'])}",
                "agree": f"{pct(row['within_5'])} / {pct(row['within_2'])} (n={row['pass2_n']})",
                "ratio": (f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"
                          if ratio else "-"),
            })
    return format_table(rows, [("backend", "backend"), ("precision", "precision"),
                               ("space", "space"), ("batch", "batch"), ("n", "n"),
                               ("p10 ms (min-max)", "p10"), ("pass 2 within 5% / 2%", "agree"),
                               (f"/{reference} median (min-max)" if reference else "ratio", "ratio")])


def throughput_table(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for spec, result in results.items():
        for row in throughput_rows(result or {}):
            rows.append({"backend": spec, "pass": str(row["pass"]), "n": str(row["measured"]),
                         "wall": fmt(row["wall_s"], ".1f"),
                         "rate": fmt(row["archs_per_min"], ".1f"),
                         "setup": pct(row["setup_share"]),
                         "build": fmt(row["build_s"], ".1f")})
    return format_table(rows, [("backend", "backend"), ("pass", "pass"), ("networks", "n"),
                               ("wall s", "wall"), ("networks/min", "rate"),
                               ("export+session/engine share", "setup"),
                               ("engine build s", "build")])


def last_lines(text: str, start_marker: str | None = None, limit: int = 25) -> list[str]:
    """The block of ``text`` from the last line starting with ``start_marker`` (else its
    last ``limit`` lines): how the check shows the pipeline's final table."""
    lines = [line.rstrip() for line in text.splitlines()]
    if start_marker:
        starts = [i for i, line in enumerate(lines) if line.startswith(start_marker)]
        if starts:
            return [line for line in lines[starts[-1]:] if line.strip()]
    return [line for line in lines if line.strip()][-limit:]


_FINAL_STAGE = re.compile(r"^\[(\d+)/\1\]")


def final_stage_lines(text: str, limit: int = 25) -> list[str]:
    """The pipeline's output from its last stage header ``[N/N]`` on (its final table),
    whatever N is; else the last ``limit`` lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines) if _FINAL_STAGE.match(line.strip())]
    if starts:
        return [line for line in lines[starts[-1]:] if line.strip()]
    return [line for line in lines if line.strip()][-limit:]


def first_sentence(text: str, limit: int = 300) -> str:
    """The last non-empty line of an error output, trimmed (tracebacks end with the error)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:limit]


def plan_chunks(archs: dict[str, list[str]], batches: Sequence[int],
                group: int) -> list[tuple[str, int, list[str]]]:
    """(space, batch, arch strings) groups in the order the check measures them: the first
    ``group`` archs of every space at every batch, then the next ``group``..., so a run the
    time guard cuts short still covers every space and batch."""
    chunks = []
    longest = max((len(v) for v in archs.values()), default=0)
    for start in range(0, longest, group):
        for batch in batches:
            for space, strings in archs.items():
                part = list(strings[start:start + group])
                if part:
                    chunks.append((space, int(batch), part))
    return chunks
