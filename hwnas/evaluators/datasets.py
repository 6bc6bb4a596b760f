"""Small image-classification datasets held in memory as tensors, split train / validation.

The validation split is carved out of the *training* data with a fixed seed:
search decisions never look at a test split. Nothing is downloaded:
``digits`` ships with scikit-learn (the embedded default), CIFAR-10/100 are
read from a local folder with ``download=False``, and any ImageFolder-style
directory works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spaces.errors import HwnasError


class DatasetNotFound(HwnasError, FileNotFoundError):
    """The dataset the user named is not on this machine."""


@dataclass
class DataSplit:
    """Normalised tensors (N, C, H, W) and integer labels, train and validation."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    def describe(self) -> dict:
        return {"dataset": self.name, "train": int(len(self.y_train)), "val": int(len(self.y_val)),
                "num_classes": self.num_classes, "shape": list(self.x_train.shape[1:])}


BUILTIN = ("digits", "cifar10", "cifar100")


def load(name: str, input_size: int, in_channels: int, *, root: str | Path | None = None,
         val_fraction: float = 0.2, max_samples: int | None = None, seed: int = 0) -> DataSplit:
    """``digits``, ``cifar10``/``cifar100`` (from ``root``) or a path to an ImageFolder tree."""
    if not 0.0 < val_fraction < 1.0:
        raise HwnasError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    if name == "digits":
        x, y = _digits()
    elif name in ("cifar10", "cifar100"):
        x, y = _cifar(name, root)
    else:
        x, y = _image_folder(Path(name), input_size, in_channels)
    return _prepare(name, x, y, input_size, in_channels, val_fraction, max_samples, seed)


def _digits() -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return x, np.asarray(bunch.target)


def _cifar(name: str, root: str | Path | None) -> tuple[torch.Tensor, np.ndarray]:
    import torchvision

    if root is None:
        raise DatasetNotFound(f"{name} needs --data-root pointing at the folder that holds "
                              f"the extracted {name} batches (nothing is downloaded)")
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        ds = cls(str(root), train=True, download=False)
    except RuntimeError as err:
        raise DatasetNotFound(f"{name} not found under {root} (nothing is downloaded; extract "
                              f"the python version of the dataset there)") from err
    x = torch.tensor(np.asarray(ds.data), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    return x, np.asarray(ds.targets)


def _image_folder(path: Path, input_size: int, in_channels: int) -> tuple[torch.Tensor, np.ndarray]:
    if not path.is_dir():
        raise DatasetNotFound(f"dataset {str(path)!r} is neither one of {', '.join(BUILTIN)} "
                              f"nor an existing image folder")
    import torchvision
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize((input_size, input_size)), transforms.ToTensor()])
    try:
        ds = torchvision.datasets.ImageFolder(str(path), transform=tf)
    except (FileNotFoundError, RuntimeError) as err:
        raise DatasetNotFound(f"no class folders with images under {path}") from err
    xs, ys = [], []
    for img, label in ds:
        xs.append(img[:in_channels] if img.shape[0] >= in_channels else img)
        ys.append(label)
    return torch.stack(xs), np.asarray(ys)


def _prepare(name: str, x: torch.Tensor, y: np.ndarray, input_size: int, in_channels: int,
             val_fraction: float, max_samples: int | None, seed: int) -> DataSplit:
    from sklearn.model_selection import train_test_split

    num_classes = int(y.max()) + 1
    idx = np.arange(len(y))
    if max_samples is not None and max_samples < len(idx):
        idx, _ = train_test_split(idx, train_size=max_samples, stratify=y, random_state=seed)
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=y[idx], random_state=seed)
    x_tr, x_va = _fit_shape(x[tr], input_size, in_channels), _fit_shape(x[va], input_size, in_channels)
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    yt = torch.as_tensor(y, dtype=torch.long)
    return DataSplit(name, ((x_tr - mean) / std).contiguous(), yt[tr],
                     ((x_va - mean) / std).contiguous(), yt[va], num_classes)


def _fit_shape(x: torch.Tensor, input_size: int, in_channels: int) -> torch.Tensor:
    """Resize to the space's input size and match its channels (repeat grey, or average
    colour down to grey)."""
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    c = x.shape[1]
    if c == in_channels:
        return x
    if c == 1:
        return x.repeat(1, in_channels, 1, 1)
    if in_channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise HwnasError(f"cannot map {c}-channel images to a space with {in_channels} input channels")
