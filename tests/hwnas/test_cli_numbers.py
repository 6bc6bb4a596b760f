"""Bad numbers and names on every verb: one sentence, exit 2, nothing written.

One table for all verbs, so a new flag's range check is one row, not one more copy
of the same test in each verb's file.
"""

import pytest

import spaces
from tests.hwnas.failures import fails_in_one_sentence

NAO = spaces.get("nao")
PIPELINE = ["search", "--initial", "8", "--holdout", "6", "--active-measurements", "6",
            "--sweep", "2", "--search-epochs", "1", "--retrain-epochs", "1", "--max-samples", "300",
            "--quick", "--no-progress"]
BASE = {
    "explore": ["explore", "--space", "nb201", "--device-table", "gold_6226", "--queries", "30",
                "--no-progress", "--out", "{tmp}/run"],
    "search": [*PIPELINE, "--out", "{tmp}/never"],
    "profile": ["profile", "--device", "torch:cpu", "--space", "nb201", "-n", "2",
                "--db", "{tmp}/l.sqlite"],
    "export": ["export", "--space", "nao", "--arch", NAO.to_string(NAO.sample(0)),
               "-o", "{tmp}/m.onnx", "--exporter", "torchscript", "--no-measure", "--untrained"],
}
CASES = [
    ("explore", ["--queries", "0"], "--queries must be at least 1"),
    ("explore", ["--queries", "10000000"], "--queries must be at most 1,000,000"),
    ("explore", ["--seed", "-1"], "--seed must be at least 0"),
    ("explore", ["--input-size", "0"], "--input-size must be at least 1"),
    ("explore", ["--population", "1"], "--population must be at least 2"),
    ("search", ["--space", "nope"], "unknown space"),
    ("search", ["--device", "ort:warp"], "unknown device 'ort:warp'"),
    ("search", ["--strategy", "supernet", "--space", "nao"], "fbnetv2 space only"),
    ("search", ["--budget", "latency_ms>=3"], "wrong way"),
    ("search", ["--sweep", "0"], "--sweep must be at least 1"),
    ("search", ["--max-rounds", "0"], "--max-rounds must be at least 1"),
    ("search", ["--predictor", "/no/such/file.pt"], "not found"),
    ("search", ["--db", "/etc/hostname"], "not an SQLite file"),
    ("search", ["--budget", "latency_ms<=0.000001"], "below anything fbnetv2:tiny can reach"),
    ("search", ["--budget", "macs<=1"], "below anything fbnetv2:tiny can reach"),
    ("profile", ["--input-size", "0"], "--input-size must be at least 1"),
    ("profile", ["--input-size", "-32"], "--input-size must be at least 1"),
    ("profile", ["--threads", "0"], "--threads must be at least 1"),
    ("profile", ["--seed", "-1"], "--seed must be at least 0"),
    ("profile", ["--calls", "0"], "--calls must be at least 1"),
    ("profile", ["--max-s", "0"], "--max-s must be a positive number"),
    ("profile", ["--warmup-s", "-1"], "--warmup-s must be zero or more"),
    ("profile", ["--batch", "100000"], "--batch must be at most 4,096"),
    ("export", ["--num-classes", "-1"], "--num-classes must be at least 1"),
    ("export", ["--num-classes", "0"], "--num-classes must be at least 1"),
    ("export", ["--input-size", "0"], "--input-size must be at least 1"),
    ("export", ["--input-size", "100000"], "--input-size must be at most 1,024"),
    ("export", ["--epochs", "0"], "--epochs must be at least 1"),
    ("export", ["--seed", "-3"], "--seed must be at least 0"),
]


@pytest.mark.parametrize("verb, extra, message", CASES,
                         ids=[f"{v}{' '.join(e)}" for v, e, _ in CASES])
def test_bad_option_is_one_sentence_exit_2_and_nothing_written(tmp_path, capsys, verb, extra,
                                                                 message):
    argv = [str(a).replace("{tmp}", str(tmp_path)) for a in BASE[verb]]
    fails_in_one_sentence(capsys, *argv, *extra, contains=message)
    assert list(tmp_path.iterdir()) == []
