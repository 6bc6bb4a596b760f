"""``hwnas supernet train | eval | export``: a checkpoint that names what it holds, inherited
accuracy printed with the dataset's name, a verified ONNX file stamped trained=supernet,
and bad input in one sentence with nothing written."""

from __future__ import annotations

import json

import onnx
import pytest

from hwnas.cli import main

pytest.importorskip("onnxruntime")

SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--input-size", "8"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("supernet") / "nb201.ckpt"
    assert main(["supernet", "-q", "train", *SMALL, "--max-samples", "256", "--epochs", "1",
                 "-o", str(path)]) == 0
    return path


def test_train_writes_a_checkpoint_that_names_what_it_holds(checkpoint):
    from hwnas.oneshot.checkpoint import read_meta

    meta = read_meta(checkpoint)
    assert meta["space_key"] == "nb201(C=4,N=1,in_channels=3)" and meta["input_size"] == 8
    assert meta["dataset"] == "digits" and meta["epochs"] == 1
    assert meta["sampler"]["name"] == "sandwich"


def test_eval_prints_inherited_accuracy_and_the_dataset(checkpoint, capsys):
    assert main(["supernet", "eval", str(checkpoint), "--arch", ARCH, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["rows"][0]
    assert row["arch"] == ARCH and row["dataset"] == "digits" and 0 <= row["accuracy"] <= 100
    assert out["sampler"] == "sandwich"


def test_export_writes_a_verified_file_with_inherited_weights(checkpoint, tmp_path, capsys):
    target = tmp_path / "model.onnx"
    assert main(["supernet", "export", str(checkpoint), "--arch", ARCH, "-o", str(target)]) == 0
    meta = {p.key: p.value for p in onnx.load(target).metadata_props}
    assert meta["hwnas.trained"] == "supernet" and meta["hwnas.arch"] == ARCH
    assert "inherited from supernet nb201.ckpt" in meta["hwnas.trained_on"]
    assert "hwnas.preprocessing" in meta and float(meta["hwnas.accuracy"]) >= 0
    # the file's accuracy is the inherited one (no fine-tune): what eval prints
    capsys.readouterr()
    assert main(["supernet", "eval", str(checkpoint), "--arch", ARCH, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["accuracy"] == pytest.approx(
        float(meta["hwnas.accuracy"]), abs=1e-6)


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwnas: error:"), err
    return err[0]


def test_bad_input_is_one_sentence_and_writes_nothing(checkpoint, tmp_path, capsys):
    target = tmp_path / "never.onnx"
    assert main(["supernet", "export", str(checkpoint), "--arch", "|bad", "-o", str(target)]) == 2
    assert "invalid nb201 architecture" in _one_sentence(capsys) and not target.exists()
    assert main(["supernet", "export", str(checkpoint), "--arch", ARCH, "-o", str(target),
                 "--finetune-epochs", "-1"]) == 2
    assert "--finetune-epochs" in _one_sentence(capsys) and not target.exists()
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:-100])
    assert main(["supernet", "eval", str(truncated), "--arch", ARCH]) == 2
    assert "truncated" in _one_sentence(capsys)
    assert main(["supernet", "train", *SMALL, "--sampler", "nope", "-o",
                 str(tmp_path / "x.ckpt")]) == 2
    assert "unknown sampler" in _one_sentence(capsys) and not (tmp_path / "x.ckpt").exists()


def test_resume_continues_a_finished_training_without_repeating_it(checkpoint, tmp_path, capsys):
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(checkpoint.read_bytes())
    assert main(["supernet", "train", *SMALL, "--max-samples", "256", "--epochs", "1",
                 "-o", str(copy), "--resume", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resumed_at_step"] == out["steps"]  # every step was done: nothing ran again


def test_objective_pi_trains_without_labels_and_refuses_a_labelled_sampler(tmp_path, capsys):
    from hwnas.oneshot.checkpoint import read_meta

    path = tmp_path / "pi.ckpt"
    assert main(["supernet", "train", *SMALL, "--epochs", "1", "--max-samples", "256",
                 "--objective", "pi", "-o", str(path)]) == 0
    meta = read_meta(path)
    assert meta["objective"]["name"] == "pi" and meta["sampler"]["name"] == "uniform"
    # its classifier never saw a class: eval reads it with a linear probe on the features
    capsys.readouterr()
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    assert main(["supernet", "eval", str(path), "--arch", arch, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert "linear probe" in row["weights"] and 10.0 < row["rows"][0]["accuracy"] <= 100.0
    never = tmp_path / "never.onnx"
    assert main(["supernet", "export", str(path), "--arch", arch, "-o", str(never),
                 "--finetune-epochs", "0"]) == 2
    assert "--finetune-epochs N" in capsys.readouterr().err and not never.exists()
    for extra, words in ((["--objective", "pi", "--sampler", "sandwich"], "leave --sampler out"),
                         (["--objective", "nope"], "unknown --objective")):
        capsys.readouterr()
        out = tmp_path / "never.ckpt"
        assert main(["supernet", "train", *SMALL, *extra, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and not out.exists()
