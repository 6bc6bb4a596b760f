"""Do a run's exported files deploy as-is? Metadata-only preprocessing, FP32 vs INT8.

For every network of a pipeline run's front (``front/<k>/model.onnx``):

* the accuracy on the digits validation split when the raw images are prepared with
  *only* what the file's metadata says (numpy, README's "Deploying a result" code)
  and run in ONNX Runtime -- next to the accuracy stamped in the file;
* ``hwnas export RUN --pick K --int8`` (a subprocess, as a user would run it): the
  fp32 and int8 accuracy on the validation split and both files' latency measured
  on ``ort:cpu`` (interleaved, same protocol as profiling).

Also times ``hwnas spaces`` (kept ranges) in a fresh process. Prints the machine's
load next to the timings.

    python benchmarks/deploy_check.py RUN_DIR            # a finished hwnas search run
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hwnas"))


def metadata_only_accuracy(path: Path) -> tuple[float, float]:
    """(accuracy from metadata-only preprocessing, stamped accuracy), on digits' val split."""
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    from hwnas import onnx_meta
    from hwnas.evaluators.datasets import split_indices
    from test_deploy import preprocess  # the README's numpy code

    meta = onnx_meta.read_metadata(path)
    bunch = load_digits()
    _, val = split_indices(bunch.target, seed=0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.concatenate([preprocess(im, meta["preprocessing"]) for im in bunch.images[val]])
    logits = session.run(None, {name: x})[0]
    names = meta["class_names"]
    hits = [names[i] == str(t) for i, t in zip(logits.argmax(1), bunch.target[val])]
    return 100.0 * float(np.mean(hits)), float(meta["accuracy"])


def int8_export(run: Path, k: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "hwnas", "export", str(run), "--pick", str(k),
                           "--int8", "--json", "-o", str(out)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"hwnas export --int8 failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[-1].strip(), file=sys.stderr)
        return 2
    run = Path(argv[0])
    front = pd.read_csv(run / "pareto.csv")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for row in front.itertuples():
        acc, stamped = metadata_only_accuracy(run / row.onnx)
        report = int8_export(run, int(row.k), run / f"int8-{row.k}.onnx")
        rows.append({"k": row.k, "budget_ms": row.budget_ms, "stamped acc %": stamped,
                     "metadata-only acc %": acc, "fp32 acc %": report["fp32_accuracy"],
                     "int8 acc %": report["accuracy"], "fp32 ms": report["fp32_latency_ms"],
                     "int8 ms": report["latency_ms"],
                     "int8/fp32 latency": report["latency_ms"] / report["fp32_latency_ms"]})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hwnas", "spaces"], check=True, env=env,
                   capture_output=True)
    print(f"hwnas spaces: {time.perf_counter() - start:.1f} s (fresh process, kept ranges); "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
