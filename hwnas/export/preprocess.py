"""Preprocessing baked into the graph: a raw uint8 image in, logits out.

For deployers who want one call: the exported graph takes the dataset's raw image
(``N x H x W x C`` uint8, as read from a file or camera) and applies exactly the
steps recorded in the file's ``preprocessing`` metadata -- scale, bilinear resize
(half-pixel centres, no antialiasing), channel mapping, per-channel normalisation --
before the network. The same metadata lets anyone reproduce those steps by hand
(README, "Deploying a result"); the baked file gives the same logits.
"""

from __future__ import annotations

from typing import Any, Mapping

from hwnas.export.errors import ExportError


def raw_input_shape(pre: Mapping[str, Any]) -> tuple[int, int, int]:
    """(H, W, C) of the raw image the baked graph takes."""
    size = pre.get("source_size") or pre["input_size"]
    return int(size[0]), int(size[1]), int(pre["source_channels"])


def baked(model: Any, pre: Mapping[str, Any]) -> Any:
    """``model`` behind the recorded preprocessing, as one module taking uint8 NHWC."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    if pre.get("channel_map") not in ("none", "repeat", "mean"):
        raise ExportError(f"cannot bake preprocessing with channel map {pre.get('channel_map')!r}")
    size = tuple(int(v) for v in pre["input_size"])
    channels = int(pre["channels"])

    class Baked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model
            self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = image.to(torch.float32).permute(0, 3, 1, 2) * float(pre["scale"])
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            if pre["channel_map"] == "repeat":
                x = x.repeat(1, channels, 1, 1)
            elif pre["channel_map"] == "mean":
                x = x.mean(dim=1, keepdim=True)
            return self.net((x - self.mean) / self.std)

    return Baked().eval()
