"""The transfer predictor's references come from one space and one input shape; the
one-hot correction waits for enough measurements; saved files of before still load."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from latency import predictors
from latency.predictors import PredictorError, PredictorMismatch
from tests.latency.test_predictors import additive_costs, additive_latency, all_archs


@pytest.fixture(scope="module")
def truth(grid):
    archs = all_archs(grid)
    return archs, {name: additive_latency(grid, archs, *additive_costs(grid, seed))
                   for name, seed in (("a", 1), ("b", 2), ("slow32", 3), ("other", 4))}


def rows(grid, archs, ms, label, space=None, shape="1x4x4"):
    return [{"space": space or grid.key, "arch": grid.to_string(a), "device_label": label,
             "batch": 1, "input_shape": shape, "latency_ms": m} for a, m in zip(archs, ms)]


@pytest.fixture(scope="module")
def frame(grid, truth):
    """help:a and help:b at 1x4x4; help:a again at 1x8x8 (x3, another input); 'other' of
    another space (its strings parse in this one, so only the space column tells)."""
    archs, ms = truth
    data = (rows(grid, archs[:400], ms["a"][:400], "help:a")
            + rows(grid, archs[:400], ms["b"][:400], "help:b")
            + rows(grid, archs[:300], 3 * ms["a"][:300], "help:a", shape="1x8x8")
            + rows(grid, archs[:400], ms["other"][:400], "help:other", space="grid64-wide"))
    return pd.DataFrame(data)


def test_other_spaces_and_input_shapes_are_ignored_with_a_warning(grid, frame, caplog):
    with caplog.at_level(logging.WARNING, logger="latency.predictors.transfer"):
        tr = predictors.create("transfer", grid).fit_references(frame)
    assert list(tr.references) == ["help:a@b1", "help:b@b1"]
    assert tr.reference_shape == "1x4x4"
    assert "ignoring 400 rows of other spaces (grid64-wide)" in caplog.text
    assert "ignoring 300 rows at input shape(s) 1x8x8" in caplog.text
    # the 1x4x4 reference learnt help:a's 1x4x4 latencies, not a blend with the x3 rows
    archs = all_archs(grid)[:400]
    a = frame[(frame.device_label == "help:a") & (frame.input_shape == "1x4x4")].latency_ms.to_numpy()
    assert np.allclose(tr.references["help:a@b1"].predict(archs), a, rtol=0.05)


def test_references_at_the_devices_input_shape(grid, frame):
    tr = predictors.create("transfer", grid).fit_references(frame, input_shape=(1, 8, 8))
    assert list(tr.references) == ["help:a@b1"] and tr.reference_shape == "1x8x8"
    with pytest.raises(PredictorError, match=r"no reference measurements of grid64 at input shape "
                                             r"3x4x4; stored: 1x4x4, 1x8x8"):
        predictors.create("transfer", grid).fit_references(frame, input_shape="3x4x4")


def test_a_device_at_another_input_shape_is_refused(grid, frame, truth):
    archs, ms = truth
    tr = predictors.create("transfer", grid).fit_references(frame)
    tr.fit(archs[:10], ms["slow32"][:10])
    tr.set_device("dev", "ort:cpu", batch=1, input_shape="1x4x4")  # same shape: fine
    with pytest.raises(PredictorMismatch, match="references were measured at input shape 1x4x4, "
                                                "the device at 1x8x8"):
        tr.set_device("dev", "ort:cpu", batch=1, input_shape="1x8x8")


def test_references_of_mixed_input_shapes_are_refused(grid, frame):
    small = predictors.create("transfer", grid).fit_references(frame, input_shape="1x4x4")
    large = predictors.create("transfer", grid).fit_references(frame, input_shape="1x8x8")
    mixed = {"a4": small.references["help:a@b1"], "a8": large.references["help:a@b1"]}
    with pytest.raises(PredictorError, match="different input shapes .*a4 1x4x4, a8 1x8x8"):
        predictors.create("transfer", grid, references=mixed)


def test_the_fitted_device_cannot_be_its_own_reference(grid, frame):
    with pytest.raises(PredictorError, match="help:a@b1 is the device being fitted"):
        predictors.create("transfer", grid).fit_references(frame, keys=["help:a@b1"],
                                                           exclude=["help:a@b1"])
    with pytest.raises(PredictorError, match=r"no reference data for help:zz@b1 \(grid64 at input "
                                             r"shape 1x4x4\); available: help:b@b1$"):
        predictors.create("transfer", grid).fit_references(frame, keys=["help:zz@b1"],
                                                           exclude=["help:a@b1"])


@pytest.mark.parametrize("n,corrected", [(10, False), (29, False), (30, True), (60, True)])
def test_the_correction_starts_at_lut_from(grid, truth, n, corrected):
    archs, ms = truth
    refs = {k: predictors.create("lut", grid, target="linear").fit(archs, ms[k]) for k in ("a", "b")}
    order = np.random.default_rng(0).permutation(len(archs))[:n]
    new = ms["slow32"]  # unrelated to a and b: a correction has much to explain
    tr = predictors.create("transfer", grid, references=refs).fit([archs[i] for i in order], new[order])
    assert bool(np.abs(tr.table).max() > 1e-6) == corrected


def test_a_file_saved_before_lut_from_existed_loads(grid, truth, tmp_path):
    archs, ms = truth
    refs = {"a": predictors.create("lut", grid).fit(archs[:200], ms["a"][:200])}
    tr = predictors.create("transfer", grid, references=refs, correction="lut").fit(archs[:12], ms["b"][:12])
    data = tr.to_dict()
    del data["meta"]["config"]["lut_from"]  # the previous format's config
    torch.save(data, tmp_path / "old.pt")
    loaded = predictors.load(tmp_path / "old.pt", space=grid)
    assert loaded.lut_from == 30 and np.allclose(loaded.predict(archs[:50]), tr.predict(archs[:50]))
