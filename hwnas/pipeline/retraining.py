"""Stage 5a: retrain each chosen network standalone, keeping its weights for the export.

The supernet's shared weights (or NAO's short candidate training) only rank
architectures; the accuracy a user ships is that of the network trained alone.
Each network is trained with the search's recipe (``hwnas.export_train``), and
its weights and accuracy are saved at once under ``networks/<n>/``, so a killed
run retrains only the network that was in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hwnas.runs import _atomic_write
from spaces import Arch, Space


def network_dir(run_path: Path, index: int) -> Path:
    """Where the ``index``-th chosen network's weights and result live."""
    return run_path / "networks" / f"{index:02d}"


def retrain(space: Space, arch: Arch, folder: Path, *, dataset: str, epochs: int,
            input_size: int, seed: int, root: str | None = None,
            max_samples: int | None = None) -> dict[str, Any]:
    """Train ``arch`` (or read the finished result) -> {arch, accuracy, trained_on, weights}."""
    result_path = folder / "result.json"
    arch_string = space.to_string(arch)
    if result_path.is_file():
        stored = json.loads(result_path.read_text(encoding="utf-8"))
        if stored.get("arch") == arch_string and stored.get("epochs") == epochs \
                and (folder / "weights.pt").is_file():
            return stored
    from hwnas.export_train import train_for_export

    net = train_for_export(space, arch, dataset, epochs, input_size=input_size, root=root,
                           seed=seed, max_samples=max_samples)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "weights.pt.tmp"
    torch.save(net.module.state_dict(), tmp)
    tmp.replace(folder / "weights.pt")
    result = {"arch": arch_string, "accuracy": net.accuracy, "trained_on": net.trained_on,
              "epochs": epochs, "num_classes": net.num_classes,
              "weights": str(folder / "weights.pt")}
    _atomic_write(result_path, json.dumps(result, indent=2))
    return result
