"""Small image-classification datasets held in memory as tensors, split train / validation.

The validation split is carved out of the *training* data with a fixed seed:
search decisions never look at a test split. Nothing is downloaded:
``digits`` ships with scikit-learn (the embedded default), ``cluttered-digits`` is
generated from it (harder: distorted digits among clutter, split by source image; see
``cluttered_digits``), CIFAR-10/100 are read from a local folder with
``download=False``, and any ImageFolder-style directory works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spaces.errors import HwnasError
from spaces.core.errors import NotFound


DatasetNotFound = NotFound  # The dataset the user named is not on this machine.


@dataclass
class Preprocessing:
    """How a raw image becomes the network's input, step by step, so a deployed model can
    be fed exactly what it was trained on (stored in the ONNX file, as timm's
    ``pretrained_cfg`` travels with its weights).

    Steps, in order: ``x = raw * scale`` (raw: ``source_layout`` array of the source
    ``source_size`` and ``source_channels``); resize to ``input_size`` with ``resize``
    (bilinear, half-pixel centres, no antialiasing: ``align_corners=False``) unless the
    sizes already match; map channels (``channel_map``: ``none``, ``repeat`` grey to
    ``channels``, or ``mean`` of colour down to grey); then ``(x - mean) / std`` per channel.
    """

    input_size: tuple[int, int]
    channels: int
    source_size: tuple[int, int] | None   # None: images of any size (an ImageFolder)
    source_channels: int
    source_layout: str                    # "HW" (grey) or "HWC"
    channel_order: str                    # "grey" or "RGB"
    scale: float
    resize: str
    channel_map: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict:
        return {"input_size": list(self.input_size), "channels": self.channels,
                "source_size": list(self.source_size) if self.source_size else None,
                "source_channels": self.source_channels, "source_layout": self.source_layout,
                "channel_order": self.channel_order, "scale": self.scale, "resize": self.resize,
                "channel_map": self.channel_map, "mean": list(self.mean), "std": list(self.std),
                "layout": "NCHW", "dtype": "float32"}


@dataclass
class DataSplit:
    """Normalised tensors (N, C, H, W) and integer labels, train and validation, with the
    preprocessing that produced them and the class names."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    preprocessing: Preprocessing | None = None
    class_names: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"dataset": self.name, "train": int(len(self.y_train)), "val": int(len(self.y_val)),
                "num_classes": self.num_classes, "shape": list(self.x_train.shape[1:])}


BUILTIN = ("digits", "cluttered-digits", "cifar10", "cifar100")


def load(name: str, input_size: int, in_channels: int, *, root: str | Path | None = None,
         val_fraction: float = 0.2, max_samples: int | None = None, seed: int = 0) -> DataSplit:
    """``digits``, ``cluttered-digits``, ``cifar10``/``cifar100`` (from ``root``) or a path
    to an ImageFolder tree."""
    if not 0.0 < val_fraction < 1.0:
        raise HwnasError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    if name == "digits":
        x, y = _digits()
        source = Source((8, 8), 1, "HW", "grey", 1.0 / 16.0, tuple(str(i) for i in range(10)))
    elif name == "cluttered-digits":
        from hwnas.evaluators import cluttered_digits

        return cluttered_digits.load(input_size, in_channels, val_fraction=val_fraction,
                                     max_samples=max_samples, seed=seed)
    elif name in ("cifar10", "cifar100"):
        x, y, classes = _cifar(name, root)
        source = Source((32, 32), 3, "HWC", "RGB", 1.0 / 255.0, classes)
    else:
        x, y, classes = _image_folder(Path(name), input_size, in_channels)
        source = Source(None, int(x.shape[1]), "HWC", "RGB" if x.shape[1] == 3 else "grey",
                        1.0 / 255.0, classes, resize="bilinear (PIL, antialiased, when loading)")
    return _prepare(name, x, y, input_size, in_channels, val_fraction, max_samples, seed, source)


@dataclass(frozen=True)
class Source:
    """What the raw images of a dataset are: size, channels, value scale, class names."""

    size: tuple[int, int] | None
    channels: int
    layout: str
    channel_order: str
    scale: float
    class_names: tuple[str, ...]
    resize: str = "bilinear (align_corners=False, no antialiasing)"


def _digits() -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return x, np.asarray(bunch.target)


def _cifar(name: str, root: str | Path | None) -> tuple[torch.Tensor, np.ndarray, tuple[str, ...]]:
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
    return x, np.asarray(ds.targets), tuple(str(c) for c in ds.classes)


def _image_folder(path: Path, input_size: int,
                  in_channels: int) -> tuple[torch.Tensor, np.ndarray, tuple[str, ...]]:
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
    return torch.stack(xs), np.asarray(ys), tuple(str(c) for c in ds.classes)


def split_indices(y: np.ndarray, val_fraction: float = 0.2, max_samples: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into the raw dataset: stratified, seeded, so anyone can
    find the exact images an accuracy was measured on."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if max_samples is not None and max_samples < len(idx):
        idx, _ = train_test_split(idx, train_size=max_samples, stratify=y, random_state=seed)
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=y[idx], random_state=seed)
    return np.asarray(tr), np.asarray(va)


def _prepare(name: str, x: torch.Tensor, y: np.ndarray, input_size: int, in_channels: int,
             val_fraction: float, max_samples: int | None, seed: int,
             source: Source | None = None,
             split: tuple[np.ndarray, np.ndarray] | None = None) -> DataSplit:
    num_classes = int(y.max()) + 1
    tr, va = split if split is not None else split_indices(y, val_fraction, max_samples, seed)
    x_tr, x_va = _fit_shape(x[tr], input_size, in_channels), _fit_shape(x[va], input_size, in_channels)
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    yt = torch.as_tensor(y, dtype=torch.long)
    pre = None
    if source is not None:
        c = x.shape[1]
        pre = Preprocessing(
            input_size=(input_size, input_size), channels=in_channels, source_size=source.size,
            source_channels=source.channels, source_layout=source.layout,
            channel_order=source.channel_order if c == in_channels else "grey",
            scale=source.scale, resize=source.resize,
            channel_map="none" if c == in_channels else ("repeat" if c == 1 else "mean"),
            mean=tuple(float(v) for v in mean.flatten()), std=tuple(float(v) for v in std.flatten()))
    names = source.class_names if source is not None else ()
    return DataSplit(name, ((x_tr - mean) / std).contiguous(), yt[tr],
                     ((x_va - mean) / std).contiguous(), yt[va], num_classes, pre, tuple(names))


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
