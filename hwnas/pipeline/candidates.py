"""A searched network made real: trained alone, exported as the file that would ship, kept.

The supernet's shared weights (or NAO's short candidate training) only rank
architectures; the accuracy a user ships is that of the network trained alone,
and the latency they are promised is that of the exported file. So each
candidate is trained with the search's recipe (``hwnas.export_train``) and
exported through ``hwnas.export.export_arch`` (checker, ONNX Runtime parity) into
``networks/<id>/`` -- weights, ``model.onnx`` and ``result.json`` -- where ``<id>``
is derived from the architecture string, so a resumed run finds it again and
trains nothing twice. The file is timed by the budget loop and then stamped with
its own measurement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces import Arch
from spaces.core import atomic_write

from hwnas.pipeline.state import PipelineState


@dataclass
class Candidate:
    """One trained, exported network."""

    arch: Arch
    arch_string: str
    folder: Path
    accuracy: float
    macs: int
    params: int

    @property
    def weights(self) -> Path:
        return self.folder / "weights.pt"

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"


def network_folder(run_path: Path, arch_string: str) -> Path:
    """``networks/<12 hex digits of the arch string's SHA-1>``: stable across resumes."""
    digest = hashlib.sha1(arch_string.encode("utf-8")).hexdigest()[:12]
    return run_path / "networks" / digest


def build_module(state: PipelineState, candidate: Candidate) -> Any:
    """The trained network as a torch module (for devices that time modules)."""
    from hwnas.export import apply_weights

    module = state.space.build(candidate.arch, state.data.num_classes, state.input_size)
    apply_weights(module, candidate.weights)
    return module.eval()


def _stored(folder: Path, text: str, recipe: str, arch: Arch) -> Candidate | None:
    """The network kept in ``folder`` if it is ``text`` made with ``recipe``, else None."""
    result_path = folder / "result.json"
    if not result_path.is_file():
        return None
    try:
        stored = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(stored, dict) and stored.get("arch") == text
            and stored.get("recipe", f"alone, {stored.get('epochs')} epochs") == recipe
            and (folder / "weights.pt").is_file() and (folder / "model.onnx").is_file()):
        return Candidate(arch, text, folder, float(stored["accuracy"]), int(stored["macs"]),
                         int(stored["params"]))
    return None


def _copy_from(source: Path, folder: Path) -> None:
    """A network of another run copied in, result last (a half-copied folder is not a hit)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("weights.pt", "model.onnx", "result.json"):
        atomic_write(folder / name, (source / name).read_bytes())


def prepare(state: PipelineState, arch: Arch) -> Candidate:
    """Train ``arch`` alone and export it (or read what a previous run of this folder did, or
    copy what another run sharing this recipe's weights made: ``state.shared_runs``)."""
    import torch

    s = state.settings
    text = state.space.to_string(arch)
    folder = network_folder(state.run_path, text)
    recipe = state.recipe() if state.recipe is not None else f"alone, {s.retrain_epochs} epochs"
    found = _stored(folder, text, recipe, arch)
    if found is not None:
        return found
    for shared in state.shared_runs:
        source = network_folder(shared, text)
        if source != folder and _stored(source, text, recipe, arch) is not None:
            _copy_from(source, folder)
            copied = _stored(folder, text, recipe, arch)
            if copied is not None:
                return copied
    from hwnas.export import export_arch
    from hwnas.export_train import train_for_export

    if state.inherit is not None:
        net = state.inherit(arch)
    else:
        net = train_for_export(state.space, arch, s.dataset, s.retrain_epochs,
                               input_size=state.input_size, root=s.data_root, seed=s.seed,
                               max_samples=s.max_samples)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = net.module.state_dict()
    atomic_write(folder / "weights.pt", lambda handle: torch.save(state_dict, handle))
    report = export_arch(state.space, arch, folder / "model.onnx", model=net.module,
                         num_classes=net.num_classes, input_size=state.input_size,
                         accuracy=float(net.accuracy), measure=False,
                         space_kwargs=s.space_kwargs, seed=s.seed,
                         metadata=net.deploy_metadata())
    result = {"arch": text, "accuracy": float(net.accuracy), "trained_on": net.trained_on,
              "epochs": s.retrain_epochs, "recipe": recipe, "num_classes": net.num_classes,
              "macs": int(report.macs), "params": int(report.params)}
    atomic_write(folder / "result.json", json.dumps(result, indent=2))
    return Candidate(arch, text, folder, float(net.accuracy), int(report.macs), int(report.params))
