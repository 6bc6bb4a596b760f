"""The InstaNAS folder: verified files, a manifest with hashes, and a router that runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import spaces
from hwnas.export.errors import ExportError
from hwnas.export.instance_folder import InstanceRouter, export_instance_folder
from hwnas.oneshot import instanas, make_supernet
from spaces.core.errors import DamagedFile, NotFound


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, torch.Tensor]:
    torch.manual_seed(0)
    space = spaces.get("fbnetv2", preset="tiny")
    supernet = make_supernet(space, 10, 16).eval()
    archs = [space.sample(i) for i in range(3)]
    nets = [supernet.extract(a).eval() for a in archs]
    controller = instanas.InstanceController(space.in_channels, 16, 3).eval()
    x = torch.randn(48, *space.input_shape(16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # a controller that spreads these images over the paths
        feats = controller.features(x)
        controller.head.weight.mul_(100.0)
        controller.head.bias.copy_(-controller.head.weight @ feats.mean(0))
    target = tmp_path_factory.mktemp("insta") / "instanas"
    (target.parent / ".instanas.partial-1").mkdir()  # what a killed export leaves
    records = [{"accuracy": 50.0 + k, "predicted_ms": 1.0 + k, "usage": 1 / 3} for k in range(3)]
    manifest = export_instance_folder(target, space, controller, list(zip(archs, nets, records)),
                                      input_size=16, check_images=x.numpy(), info={"note": "t"})
    assert manifest["note"] == "t" and len(manifest["paths"]) == 3
    assert [p.name for p in target.parent.iterdir()] == ["instanas"]  # nothing else left
    return target, nets, x


def test_router_output_equals_the_chosen_path_run_directly(folder) -> None:
    target, nets, x = folder
    router = InstanceRouter(target)
    logits, chosen = router(x.numpy())
    assert logits.shape == (len(x), 10) and set(chosen) <= {0, 1, 2}
    assert len(set(chosen)) >= 2  # the router splits a batch over paths
    for i in range(len(x)):
        with torch.no_grad():
            direct = nets[chosen[i]](x[i:i + 1]).numpy()
        np.testing.assert_allclose(logits[i:i + 1], direct, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(chosen, router.choose(x.numpy()))  # deterministic


def test_router_refuses_altered_missing_or_damaged_files(folder, tmp_path: Path) -> None:
    import shutil

    target, _, _ = folder
    copy = tmp_path / "copy"
    shutil.copytree(target, copy)
    (copy / "path-1.onnx").write_bytes((copy / "path-1.onnx").read_bytes() + b"\0")
    with pytest.raises(DamagedFile, match="altered or replaced"):
        InstanceRouter(copy)
    (copy / "path-1.onnx").unlink()
    with pytest.raises(NotFound, match="path-1.onnx"):
        InstanceRouter(copy)
    (copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DamagedFile):
        InstanceRouter(copy)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["paths"][0]["file"] = "../elsewhere.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(NotFound):
        InstanceRouter(copy)


def test_a_folder_that_is_not_instanas_is_never_replaced(tmp_path: Path) -> None:
    space = spaces.get("fbnetv2", preset="tiny")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    controller = instanas.InstanceController(space.in_channels, 16, 2)
    with pytest.raises(ExportError, match="not an InstaNAS folder"):
        export_instance_folder(mine, space, controller, [], input_size=16)
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
    assert (mine / "keep.txt").read_text() == "x"
