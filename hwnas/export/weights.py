"""Loading a user's weights into a built network strictly, with one-sentence mismatches."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hwnas.export.errors import WeightsMismatch


def load_state_dict(weights: "str | Path | Mapping[str, Any]") -> dict[str, Any]:
    """A state dict from a mapping or a ``torch.save`` file holding one (possibly under
    ``state_dict`` or ``model``, as training checkpoints often do)."""
    import torch

    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            raise WeightsMismatch(f"weights file {path} does not exist")
        try:
            weights = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - pickle/zip errors of many kinds
            raise WeightsMismatch(
                f"{path} is not a torch weights file ({type(error).__name__})") from None
    if isinstance(weights, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(weights.get(key), Mapping):
                weights = weights[key]
                break
    if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise WeightsMismatch("the weights are not a state dict (a mapping of names to tensors)")
    return dict(weights)


def apply_weights(module: Any, weights: "str | Path | Mapping[str, Any]") -> None:
    """Load weights strictly; a mismatch names the first key that does not fit."""
    state = load_state_dict(weights)
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise WeightsMismatch(f"the weights do not fit the architecture: key {key!r} is missing")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise WeightsMismatch(
                f"the weights do not fit the architecture: key {key!r} has shape "
                f"{list(state[key].shape)} in the weights but {list(tensor.shape)} in the network")
    extra = [k for k in state if k not in expected]
    if extra:
        raise WeightsMismatch(f"the weights do not fit the architecture: unexpected key {extra[0]!r}")
    module.load_state_dict(state, strict=True)
