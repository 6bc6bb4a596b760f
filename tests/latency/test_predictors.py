"""Latency predictors: fitting known synthetic latencies, soft predictions, gradients,
files and their metadata checks, bad input."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

import spaces
from latency import predictors
from latency.encoding import CostTable, Encoder, EncodingError
from latency.loss import latency_loss
from latency.predictors import PredictorError, PredictorMismatch, SoftNotSupported
from latency.predictors.lut import decision_matrix
from spaces import Arch, Decision, InvalidArchitecture, Space, UnknownName
from spaces.base import IndexStrings


class GridSpace(IndexStrings, Space):
    """``d`` decisions x ``k`` options, every combination valid; the network has one conv
    branch per decision on the same input (``chain=False``: MACs additive over decisions)
    or chained convs (``chain=True``: widths multiply, MACs not additive)."""

    separator = "."

    in_channels = 1
    default_input_size = 4

    def __init__(self, d: int = 4, k: int = 3, name: str = "grid", chain: bool = False):
        self.name = name
        self.chain = chain
        self.decisions = tuple(Decision(f"d{i}", tuple(f"o{j}" for j in range(k))) for i in range(d))

    def _build(self, arch, num_classes, input_size):
        widths = [1 + c for c in arch.choices]
        if self.chain:
            layers, c_in = [], 1
            for w in widths:
                layers.append(torch.nn.Conv2d(c_in, w, 3, padding=1, bias=False))
                c_in = w
            return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(c_in, num_classes))

        class Branches(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.convs = torch.nn.ModuleList(torch.nn.Conv2d(1, w, 3, padding=1, bias=False)
                                                 for w in widths)
                self.head = torch.nn.Linear(sum(widths), num_classes)

            def forward(self, x):
                return self.head(torch.cat([c(x).mean((2, 3)) for c in self.convs], 1))

        return Branches()


def all_archs(space):
    return [Arch(space.key, c) for c in itertools.product(*(range(len(d)) for d in space.decisions))]


def additive_costs(space, seed):
    """Known per-option costs (ms) and a constant."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 3.0, space.num_options), 1.5


def additive_latency(space, archs, costs, const):
    return const + space.one_hot_many(archs).astype(np.float64) @ costs


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE_DIR", "")


@pytest.fixture(scope="module")
def grid():
    return GridSpace(6, 4, name="grid64")  # 4,096 architectures


@pytest.fixture(scope="module")
def small():
    return GridSpace(4, 3, name="grid43")  # 81 architectures: expectations by enumeration


@pytest.fixture(scope="module")
def grid_data(grid):
    archs = all_archs(grid)
    costs, const = additive_costs(grid, 1)
    ms = additive_latency(grid, archs, costs, const)
    order = np.random.default_rng(0).permutation(len(archs))
    return archs, ms, order


def references_for(space, archs, seed=5):
    """Two reference 'devices': additive LUTs fitted on exact additive latencies."""
    refs, truth = {}, {}
    for i, name in enumerate(("refA@b1", "refB@b1")):
        costs, const = additive_costs(space, seed + i)
        ms = additive_latency(space, archs, costs, const)
        refs[name] = predictors.create("lut", space, target="linear").fit(archs, ms)
        truth[name] = ms
    return refs, truth


FAST_MLP = {"max_steps": 600, "patience": 100, "members": 3, "hidden": (32, 32)}


def fitted(kind, space, archs, ms, refs=None, **kw):
    if kind == "mlp":
        kw = {**FAST_MLP, **kw}
    if kind == "transfer":
        kw = {"references": refs, "mlp_options": {**FAST_MLP, "members": 2}, **kw}
    return predictors.create(kind, space, **kw).fit(archs, ms)


def test_registry_lists_kinds_and_rejects_unknown(small):
    assert predictors.names() == ["flops", "gbdt", "lut", "mlp", "transfer"]
    with pytest.raises(UnknownName, match="unknown predictor 'oracle'"):
        predictors.create("oracle", small)


def test_lut_recovers_known_per_op_costs(grid, grid_data):
    archs, ms, order = grid_data
    train = order[:120]  # fewer than 2x the 24 options
    lut = fitted("lut", grid, [archs[i] for i in train], ms[train])
    assert lut.target == "linear"  # auto: additive data -> linear table
    costs, const = additive_costs(grid, 1)
    for offset, decision in zip(grid.option_offsets, grid.decisions):
        block = slice(offset, offset + len(decision))
        # only differences within a decision are identified by sums
        np.testing.assert_allclose(lut.table[block] - lut.table[offset], costs[block] - costs[offset],
                                   atol=1e-3)
    np.testing.assert_allclose(lut.predict(archs), ms, rtol=1e-4)
    assert lut.costs()[1] == ("d0", "o1", pytest.approx(lut.table[1]))


def test_lut_log_target_on_multiplicative_latency(grid):
    archs = all_archs(grid)
    factors = np.random.default_rng(2).uniform(-0.5, 0.5, grid.num_options)
    ms = 3.0 * np.exp(grid.one_hot_many(archs).astype(np.float64) @ factors)
    pick = np.random.default_rng(0).permutation(len(archs))[:200]
    lut = fitted("lut", grid, [archs[i] for i in pick], ms[pick])
    assert lut.target == "log"
    np.testing.assert_allclose(lut.predict(archs), ms, rtol=1e-3)


@pytest.mark.parametrize("target", ["linear", "log"])
def test_lut_soft_is_the_exact_expected_latency(small, target):
    archs = all_archs(small)
    costs, const = additive_costs(small, 3)
    ms = additive_latency(small, archs, costs, const)
    lut = fitted("lut", small, archs, ms if target == "linear" else np.exp(ms / 5), target=target)
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 1.0, small.num_options)
    member = decision_matrix(small)
    probs = probs / (member @ (member.T @ probs))  # normalise within each decision
    weight = np.array([np.prod([probs[o + c] for o, c in zip(small.option_offsets, a.choices)])
                       for a in archs])
    assert weight.sum() == pytest.approx(1.0)
    expected = float(weight @ lut.predict(archs))
    got = lut.predict_soft(torch.tensor(probs, dtype=torch.float64))
    assert got.dim() == 0 and float(got) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["lut", "mlp", "transfer", "flops"])
def test_predict_soft_on_one_hots_equals_predict(kind, grid, grid_data):
    archs, ms, order = grid_data
    refs, _ = references_for(grid, archs)
    train = [archs[i] for i in order[:200]]
    pred = fitted(kind, grid, train, ms[order[:200]], refs=refs)
    probe = [archs[i] for i in order[200:216]]
    onehots = torch.tensor(grid.one_hot_many(probe), dtype=torch.float32)
    soft = pred.predict_soft(onehots)
    assert soft.shape == (16,)
    np.testing.assert_allclose(soft.detach().numpy(), pred.predict(probe), rtol=1e-4)
    single = pred.predict_soft(onehots[0])
    assert single.dim() == 0 and float(single.detach()) == pytest.approx(float(soft[0].detach()), rel=1e-6)


@pytest.mark.parametrize("kind", ["lut", "mlp", "transfer", "flops"])
def test_latency_loss_gradients_point_to_cheaper_ops(kind, grid, grid_data):
    archs, ms, order = grid_data
    refs, _ = references_for(grid, archs)
    train = order[:400]
    pred = fitted(kind, grid, [archs[i] for i in train], ms[train], refs=refs)
    truth = additive_costs(grid, 1)[0]
    if kind == "flops":  # the flops model's latency is its MACs: the widest branch costs most
        truth = np.tile(np.arange(4.0), 6)
    logits = torch.zeros(grid.num_options, requires_grad=True)
    probs = torch.cat([torch.softmax(logits[o:o + len(d)], 0)
                       for o, d in zip(grid.option_offsets, grid.decisions)])
    loss = latency_loss(pred.predict_soft(probs), budget_ms=1.0, form="hinge")
    loss.backward()
    grad = logits.grad.numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    for o, d in zip(grid.option_offsets, grid.decisions):
        block = slice(o, o + len(d))
        # descending the gradient raises the cheapest option's logit above the dearest's
        assert grad[block][np.argmax(truth[block])] > grad[block][np.argmin(truth[block])]


def test_mlp_fits_additive_latency_and_reports_spread(grid, grid_data):
    archs, ms, order = grid_data
    train, test = order[:300], order[300:800]
    mlp = fitted("mlp", grid, [archs[i] for i in train], ms[train])
    guess = mlp.predict([archs[i] for i in test])
    rel = np.abs(guess / ms[test] - 1)
    assert np.mean(rel < 0.10) > 0.9
    from scipy.stats import spearmanr

    assert spearmanr(guess, ms[test])[0] > 0.97
    std = mlp.predict_std([archs[i] for i in test])
    assert std.shape == guess.shape and (std >= 0).all() and std.mean() > 0
    assert std.mean() < 0.2 * guess.mean()


def test_mlp_with_macs_feature_is_soft_in_an_additive_space(grid, grid_data):
    archs, ms, order = grid_data
    mlp = fitted("mlp", grid, [archs[i] for i in order[:100]], ms[order[:100]], extras=("macs",))
    assert mlp.encoder.name == "onehot+macs"
    probe = [archs[i] for i in order[100:104]]
    soft = mlp.predict_soft(torch.tensor(grid.one_hot_many(probe)))
    np.testing.assert_allclose(soft.detach().numpy(), mlp.predict(probe), rtol=1e-4)


def test_gbdt_fits_and_has_no_soft_form(grid, grid_data):
    archs, ms, order = grid_data
    gbdt = fitted("gbdt", grid, [archs[i] for i in order[:600]], ms[order[:600]])
    from scipy.stats import spearmanr

    test = order[600:1600]
    assert spearmanr(gbdt.predict([archs[i] for i in test]), ms[test])[0] > 0.9
    with pytest.raises(SoftNotSupported, match="gbdt predictor has no differentiable form"):
        gbdt.predict_soft(torch.zeros(grid.num_options))
    with pytest.raises(PredictorError, match="does not estimate its uncertainty"):
        gbdt.predict_std(archs[:2])


def test_flops_recovers_scale_and_offset(small):
    archs = all_archs(small)
    table = CostTable(small, cache_dir=None)
    assert table.additive
    macs = np.array([small.cost(a).macs for a in archs[::10]], dtype=np.float64)
    np.testing.assert_array_equal(table.macs(archs[::10]), macs)
    ms = 0.4 + 2e-3 * table.macs(archs) / 1e6 * 1e3
    flops = fitted("flops", small, archs[:5], ms[:5])
    assert flops.scale_ms_per_mmac == pytest.approx(2.0, rel=1e-6)
    assert flops.offset_ms == pytest.approx(0.4, rel=1e-6)
    np.testing.assert_allclose(flops.predict(archs), ms, rtol=1e-6)


def test_cost_table_falls_back_to_exact_costs_when_not_additive():
    chain = GridSpace(3, 3, name="chain33", chain=True)
    table = CostTable(chain, cache_dir=None)
    assert not table.additive
    archs = all_archs(chain)[::7]
    np.testing.assert_array_equal(table.macs(archs), [chain.cost(a).macs for a in archs])
    with pytest.raises(EncodingError, match="not additive"):
        table.soft_costs(torch.zeros(1, chain.num_options))
    with pytest.raises(EncodingError, match="unknown extra feature"):
        Encoder(chain, ("latency",))


def test_cost_table_disk_cache_round_trip(tmp_path, small):
    first = CostTable(small, cache_dir=tmp_path)
    assert first.additive
    files = list((tmp_path / "costs").glob("*.json"))
    assert len(files) == 1
    second = CostTable(small, cache_dir=tmp_path)
    assert len(second._costs) == len(first._costs) > 0
    files[0].write_text("{not json")
    assert CostTable(small, cache_dir=tmp_path).additive  # a damaged cache is rebuilt


def test_transfer_learns_a_new_device_from_ten_measurements(grid):
    archs = all_archs(grid)
    refs, truth = references_for(grid, archs)
    new = 1.3 * truth["refA@b1"] ** 0.6 * truth["refB@b1"] ** 0.4
    order = np.random.default_rng(3).permutation(len(archs))
    tr = predictors.create("transfer", grid, references=refs).fit([archs[i] for i in order[:10]],
                                                                   new[order[:10]])
    guess = tr.predict([archs[i] for i in order[10:]])
    assert np.mean(np.abs(guess / new[order[10:]] - 1)) < 0.01
    assert set(tr.mixture()) == {"refA@b1", "refB@b1"}
    # a plain LUT cannot do this with 10 measurements of 24 options
    lut = predictors.create("lut", grid).fit([archs[i] for i in order[:10]], new[order[:10]])
    assert np.mean(np.abs(lut.predict([archs[i] for i in order[10:]]) / new[order[10:]] - 1)) > 0.03


def test_transfer_references_from_a_store_frame(grid):
    archs = all_archs(grid)[:600]
    _, truth = references_for(grid, all_archs(grid))
    rows = []
    for label in ("help:a", "help:b"):
        ms = truth["refA@b1"][:600] if label == "help:a" else truth["refB@b1"][:600]
        rows += [{"arch": grid.to_string(a), "device_label": label, "batch": 1, "latency_ms": m}
                 for a, m in zip(archs, ms)]
    frame = pd.DataFrame(rows)
    tr = predictors.create("transfer", grid).fit_references(frame, exclude=["help:b@b1"])
    assert list(tr.references) == ["help:a@b1"]
    with pytest.raises(PredictorError, match="no reference data for help:c@b1"):
        predictors.create("transfer", grid).fit_references(frame, keys=["help:c@b1"])
    with pytest.raises(PredictorError, match="no reference devices"):
        predictors.create("transfer", grid).fit(archs[:10], truth["refA@b1"][:10])
    other = GridSpace(6, 4, name="other64")
    with pytest.raises(PredictorError, match="space other64"):
        predictors.create("transfer", grid, references={
            "x": predictors.create("lut", other).fit(all_archs(other)[:10], np.ones(10))})


@pytest.mark.parametrize("kind", ["lut", "mlp", "gbdt", "flops", "transfer"])
def test_save_load_round_trip_keeps_predictions_and_metadata(kind, tmp_path, grid, grid_data):
    archs, ms, order = grid_data
    refs, _ = references_for(grid, archs)
    train = [archs[i] for i in order[:60]]
    pred = fitted(kind, grid, train, ms[order[:60]], refs=refs)
    pred.set_device("abc123", "ort:cpu/1t@test", {"cpu": "x"}, batch=1, input_shape="1x4x4")
    path = pred.save(tmp_path / f"{kind}.pt")
    back = predictors.load(path, space=grid, device="abc123")
    probe = [archs[i] for i in order[60:90]]
    np.testing.assert_allclose(back.predict(probe), pred.predict(probe), rtol=1e-6)
    meta = back.meta
    assert meta["kind"] == kind and meta["space"] == "grid64" and meta["train_size"] == 60
    assert meta["device"]["label"] == "ort:cpu/1t@test" and meta["version"] == 1
    assert meta["encoding"] == "onehot" and len(back.train_archs) == 60
    predictors.load(path, space=grid, device="ort:cpu/1t@test")  # the label works too


def test_load_refuses_other_space_device_and_bad_files(tmp_path, grid, grid_data):
    archs, ms, order = grid_data
    pred = fitted("lut", grid, archs[:30], ms[:30]).set_device("abc123", "help:gold_6226")
    path = pred.save(tmp_path / "p.pt")
    with pytest.raises(PredictorMismatch, match="trained on space 'grid64', not 'grid43'"):
        predictors.load(path, space=GridSpace(4, 3, name="grid43"))
    with pytest.raises(PredictorMismatch, match="trained on device 'help:gold_6226'.*allow_device_mismatch"):
        predictors.load(path, space=grid, device="help:pixel2")
    assert predictors.load(path, space=grid, device="help:pixel2", allow_device_mismatch=True).fitted
    with pytest.raises(PredictorError, match="not known here"):
        predictors.load(path)  # 'grid64' is not a registered space
    nb = spaces.get("nb201")
    nb_path = predictors.create("lut", nb).fit(nb.sample_many(5, 0), np.arange(1.0, 6.0)).save(
        tmp_path / "nb.pt")
    assert predictors.load(nb_path).space.key == "nb201"  # space rebuilt from the registry
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(PredictorError, match="corrupt or not a predictor file"):
        predictors.load(corrupt, space=grid)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not torch")
    with pytest.raises(PredictorError, match="corrupt or not a predictor file"):
        predictors.load(garbage, space=grid)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(PredictorError, match="not an hwnas predictor file"):
        predictors.load(other, space=grid)
    newer = tmp_path / "newer.pt"
    data = pred.to_dict()
    data["meta"]["version"] = 99
    torch.save(data, newer)
    with pytest.raises(PredictorError, match="newer hwnas"):
        predictors.load(newer, space=grid)
    with pytest.raises(PredictorError, match="not found"):
        predictors.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("kind", ["lut", "mlp", "gbdt", "flops", "transfer"])
def test_bad_training_input_is_refused_with_one_sentence(kind, small):
    archs = all_archs(small)
    refs, _ = references_for(small, archs)
    options = {"references": refs} if kind == "transfer" else {}

    def make():
        return predictors.create(kind, small, **options)

    with pytest.raises(PredictorError, match="the training set is empty"):
        make().fit([], [])
    with pytest.raises(PredictorError, match="finite and positive.*nan at position 2"):
        make().fit(archs[:10], [1, 2, np.nan, 4, 5, 6, 7, 8, 9, 10])
    with pytest.raises(PredictorError, match="finite and positive.*got -1 at position 0"):
        make().fit(archs[:10], [-1.0] + [1.0] * 9)
    with pytest.raises(PredictorError, match="latencies must be numbers"):
        make().fit(archs[:2], ["fast", "slow"])
    with pytest.raises(PredictorError, match="10 architectures but 9 latencies"):
        make().fit(archs[:10], np.ones(9))
    with pytest.raises(PredictorError, match=f"{kind} predictor needs at least"):
        make().fit(archs[:1], [1.0])
    with pytest.raises(InvalidArchitecture, match="belongs to space 'nb201'"):
        make().fit([Arch("nb201", (0, 0, 0, 0))] + archs[:9], np.ones(10))
    with pytest.raises(InvalidArchitecture, match="malformed string"):
        make().fit(["|none~0|+|"] + archs[:9], np.ones(10))
    with pytest.raises(PredictorError, match="not fitted yet"):
        make().predict(archs[:2])


def test_predict_refuses_architectures_of_another_space(small):
    lut = fitted("lut", small, all_archs(small), np.arange(1.0, 82.0))
    with pytest.raises(InvalidArchitecture, match="invalid grid43 architecture"):
        lut.predict([spaces.get("fbnet").sample(0)])
    with pytest.raises(EncodingError, match=r"shape \(12,\) or \(B, 12\)"):
        lut.predict_soft(torch.zeros(13))


def test_lut_on_help_nb201_titan_rtx(shared_data):
    table = pd.read_csv(shared_data / "help-latency/nasbench201_latency.csv",
                        usecols=["arch_str", "titan_rtx_256", "eyeriss"])
    nb = spaces.get("nb201")
    archs = [nb.from_string(s) for s in table.arch_str]
    order = np.random.default_rng(0).permutation(len(archs))
    from latency import metrics

    for column in ("titan_rtx_256", "eyeriss"):
        ms = table[column].to_numpy()
        lut = predictors.create("lut", nb).fit([archs[i] for i in order[:100]], ms[order[:100]])
        guess = lut.predict([archs[i] for i in order[100:]])
        assert metrics.spearman(guess, ms[order[100:]]) > 0.99
        assert metrics.within(guess, ms[order[100:]], 0.10) > 0.95


def test_transfer_uncertainty_is_where_its_references_disagree(grid):
    archs = all_archs(grid)
    refs, truth = references_for(grid, archs)
    order = np.random.default_rng(5).permutation(len(archs))
    train = [archs[i] for i in order[:12]]
    tr = predictors.create("transfer", grid, references=refs).fit(train, truth["refA@b1"][order[:12]])
    # each reference alone, fitted affinely in log space on the same 12 measurements
    y = np.log(truth["refA@b1"][order[:12]])
    alone = []
    for name in ("refA@b1", "refB@b1"):
        f = np.log(refs[name].predict(archs))
        slope, intercept = np.polyfit(f[order[:12]], y, 1)
        alone.append(slope * f + intercept)
    std = tr.predict_std(archs) / tr.predict(archs)
    assert std.shape == (len(archs),) and (std >= 0).all()
    np.testing.assert_allclose(std, np.abs(alone[0] - alone[1]) / 2, rtol=1e-6, atol=1e-9)
    assert std.max() > 5 * np.median(std)  # it singles some architectures out
    single = predictors.create("transfer", grid, references={"refA@b1": refs["refA@b1"]})
    assert np.all(single.fit(train, truth["refA@b1"][order[:12]]).predict_std(archs) == 0)
    loaded = predictors.from_dict(tr.to_dict(), grid)  # the spread survives a save
    np.testing.assert_allclose(loaded.predict_std(archs), tr.predict_std(archs))
