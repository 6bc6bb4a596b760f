"""``cluttered-digits``: an embedded, generated dataset hard enough to rank architectures.

Why it exists: scikit-learn's ``digits`` (8x8, 1,797 images), the embedded default, is
too easy to tell networks apart: random ``fbnetv2:tiny`` architectures trained alone
land within a point or two of each other, and two training seeds rank them differently
(Kendall tau 0.37 after 2 epochs, 0.61 after 8). A search that trains candidates needs
a dataset on which capacity and input resolution visibly matter, that still trains in
seconds on a CPU, and that needs nothing downloaded.

What it is: each of the 1,797 ``digits`` images (its *source*) is drawn ``copies``
times (default 4: 7,188 images) onto a ``size`` x ``size`` grey canvas (default 32),
each time with its own

* affine transform: scale (the digit 55-70 % of the canvas high), aspect (+-15 %),
  rotation (+-20 deg), shear (+-0.3) and translation (anywhere its unrotated box still fits);
* elastic distortion: a smooth random displacement field (a 4 x 4 grid of Gaussian
  offsets, sd 0.35 source pixel, interpolated bilinearly over the canvas);
* stroke contrast: a random gain (0.6-1);
* clutter: three fragments of *other* digits (a random 4 x 4 window of a random
  source, scaled like a digit, rotated anywhere, dimmed to 35-75 %) scattered over
  the canvas;
* background: a smooth random illumination (a 3 x 3 grid, 0-25 %) plus per-pixel
  Gaussian noise (sd 6 %).

Sampling is bilinear from the 8 x 8 source (zero outside it). Digit and clutter are
combined by maximum, background and noise added, and the result is clipped and rounded
to ``uint8``. That generated canvas is the dataset's *raw image*: its ``Preprocessing``
says ``source_size`` = (size, size), grey ``HW``, ``scale`` = 1/255; from there it is
resized to the space's input size and normalised like any other dataset (a deployed
model is fed such a canvas). Generating the default set takes about a second.

Knobs (:func:`generate`): ``level`` (default 1.0) scales every distortion, the clutter
count (``round(3 * level)``), the background and the noise together (0: the plain digit,
upscaled and centred; above 1 harder still); ``copies``; ``size``.
``datasets.load("cluttered-digits", ...)`` uses the defaults; :func:`load` takes the knobs.

Determinism: the generator's seeds are fixed (:data:`GENERATOR_SEED`, independent of a
run's seed); every per-image parameter is drawn from one ``numpy.random.default_rng`` in
a fixed order before rendering, the pixel noise from a second one chunk by chunk; the
arithmetic is float64 (numpy, and torch's ``grid_sample`` for the bilinear sampling),
so the last-bit differences a platform's ``sin``/``cos``, BLAS or vector units may
make would have to fall within ~1e-12 of a rounding boundary to change a ``uint8``:
every machine gets the same bytes. One dataset per (level, copies, size) is cached in
memory per process (read-only arrays).

Split: the ``copies`` images of one source are near-duplicates, so the train/validation
split (:func:`split_by_source`) is drawn over *sources* (stratified by label, seeded by
the run's seed): every copy of a validation source is in validation, none in training.
``max_samples`` then keeps a stratified subset of each side in the same proportion.
Clutter fragments may come from any source (they are unlabelled pieces of other
digits, not the labelled content).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hwnas.evaluators.datasets import DataSplit

NAME = "cluttered-digits"
#: The generator's own seed: fixed, so the dataset is the same whatever the run's seed.
GENERATOR_SEED = 20240528
DEFAULT_LEVEL = 1.0
DEFAULT_COPIES = 4
DEFAULT_SIZE = 32
CLASS_NAMES = tuple(str(i) for i in range(10))
_CHUNK = 512  # images rendered at once (part of the definition: the noise is drawn per chunk)


def generate(level: float = DEFAULT_LEVEL, copies: int = DEFAULT_COPIES,
             size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, labels, sources)``: ``uint8`` images (N, size, size), their labels and
    the index of the ``digits`` image each was drawn from; N = ``copies`` x 1,797,
    ordered source-major (source 0's copies first). Cached per process; treat the
    arrays as read-only."""
    if not 0.0 <= float(level) <= 3.0:
        raise ValueError(f"level must be between 0 and 3, got {level}")
    if not 1 <= int(copies) <= 64:
        raise ValueError(f"copies must be between 1 and 64, got {copies}")
    if not 8 <= int(size) <= 128:
        raise ValueError(f"size must be between 8 and 128, got {size}")
    return _generate(float(level), int(copies), int(size))


@functools.lru_cache(maxsize=4)
def _generate(level: float, copies: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    src = np.asarray(bunch.images, dtype=np.float64) / 16.0          # (S, 8, 8) in [0, 1]
    labels = np.asarray(bunch.target, dtype=np.int64)
    n_src = len(src)
    sources = np.repeat(np.arange(n_src), copies)                    # source-major
    n = len(sources)
    rng = np.random.default_rng(GENERATOR_SEED)

    # Every random number is drawn here, in this order, before anything is rendered.
    height = size * rng.uniform(0.70 - 0.15 * level, 0.70, n)        # digit height, px
    room = np.maximum(size - height, 0.0) / 2.0                      # keeps the digit on the canvas
    digit = {"which": sources, "zoom": 8.0 / height,
             "aspect": np.exp(rng.uniform(-0.15, 0.15, n) * level),
             "angle": np.deg2rad(rng.uniform(-20.0, 20.0, n) * level),
             "shear": rng.uniform(-0.3, 0.3, n) * level,
             "shift": rng.uniform(-1.0, 1.0, (n, 2)) * (room * min(level, 1.0))[:, None],
             "elastic": rng.normal(0.0, 0.35 * level, (n, 2, 4, 4))}   # source px
    gain = rng.uniform(1.0 - 0.4 * min(level, 1.0), 1.0, n)
    fragments = []
    for _ in range(int(round(3 * level))):
        fragments.append({"which": rng.integers(0, n_src, n),
                          "zoom": 8.0 / (size * rng.uniform(0.45, 0.70, n)),
                          "aspect": np.ones(n), "angle": rng.uniform(-np.pi, np.pi, n),
                          "shear": np.zeros(n), "shift": rng.uniform(-0.5, 0.5, (n, 2)) * size,
                          "window": rng.uniform(0.0, 4.0, (n, 2)),     # a 4x4 source window
                          "gain": rng.uniform(0.35, 0.75, n) * min(level, 1.0)})
    coarse = rng.uniform(0.0, 0.25 * level, (n, 3, 3))               # illumination
    noise_rng = np.random.default_rng([GENERATOR_SEED, 1])

    # Rendered _CHUNK images at a time to keep the float64 temporaries small.
    grid = (np.arange(size, dtype=np.float64) + 0.5) - size / 2.0    # pixel centres, canvas-centred
    up = _upsample_matrix(3, size)
    images = np.empty((n, size, size), dtype=np.uint8)
    for lo in range(0, n, _CHUNK):
        part = slice(lo, min(lo + _CHUNK, n))
        canvas = _draw(src, grid, **{k: v[part] for k, v in digit.items()})
        canvas *= gain[part, None, None]
        for frag in fragments:
            f = {k: v[part] for k, v in frag.items() if k != "gain"}
            canvas = np.maximum(canvas, _draw(src, grid, **f) * frag["gain"][part, None, None])
        canvas += up @ coarse[part] @ up.T
        canvas += noise_rng.normal(0.0, 0.06 * level, canvas.shape)
        images[part] = np.floor(np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5)
    y = labels[sources]
    for arr in (images, y, sources):
        arr.setflags(write=False)
    return images, y, sources


def _draw(src: np.ndarray, grid: np.ndarray, which: np.ndarray, zoom: np.ndarray,
          aspect: np.ndarray, angle: np.ndarray, shear: np.ndarray, shift: np.ndarray,
          elastic: np.ndarray | None = None, window: np.ndarray | None = None) -> np.ndarray:
    """Sample source images ``src[which]`` onto the canvas through the inverse of
    (scale x aspect, shear, rotation, shift), plus an optional elastic field (in source
    pixels) and an optional 4 x 4 source window (everything outside it is blank)."""
    size = len(grid)
    c, s = np.cos(angle), np.sin(angle)
    zx, zy = zoom / np.sqrt(aspect), zoom * np.sqrt(aspect)
    # canvas offsets from the digit's centre: (n, size, size)
    u = grid[None, None, :] - shift[:, 0, None, None]
    v = grid[None, :, None] - shift[:, 1, None, None]
    # inverse rotation, then inverse shear, then canvas px -> source px
    ur = c[:, None, None] * u + s[:, None, None] * v
    vr = -s[:, None, None] * u + c[:, None, None] * v
    ur = ur - shear[:, None, None] * vr
    x = ur * zx[:, None, None] + 4.0                     # source coords, centre (4, 4)
    y = vr * zy[:, None, None] + 4.0
    if elastic is not None:
        up = _upsample_matrix(elastic.shape[-1], size)
        x = x + up @ elastic[:, 0] @ up.T
        y = y + up @ elastic[:, 1] @ up.T
    # bilinear sample (zero outside the 8x8 source); align_corners=False puts source pixel
    # k's centre at k + 0.5, the convention used above
    import torch
    import torch.nn.functional as F

    coords = np.stack([x * 0.25 - 1.0, y * 0.25 - 1.0], axis=-1)
    out = F.grid_sample(torch.from_numpy(src[which][:, None]), torch.from_numpy(coords),
                        mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0].numpy()
    if window is not None:
        wx, wy = window[:, 0, None, None], window[:, 1, None, None]
        out = np.where((x >= wx) & (x < wx + 4) & (y >= wy) & (y < wy + 4), out, 0.0)
    return out


@functools.lru_cache(maxsize=8)
def _upsample_matrix(coarse: int, size: int) -> np.ndarray:
    """(size, coarse) bilinear interpolation weights from a coarse grid spanning the canvas."""
    pos = (np.arange(size, dtype=np.float64) + 0.5) / size * (coarse - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, coarse - 2)
    frac = pos - lo
    m = np.zeros((size, coarse), dtype=np.float64)
    m[np.arange(size), lo] = 1.0 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def load(input_size: int, in_channels: int, *, level: float = DEFAULT_LEVEL,
         copies: int = DEFAULT_COPIES, size: int = DEFAULT_SIZE, val_fraction: float = 0.2,
         max_samples: int | None = None, seed: int = 0) -> "DataSplit":
    """The dataset as a :class:`~hwnas.evaluators.datasets.DataSplit` (what
    ``datasets.load("cluttered-digits", ...)`` returns with the default knobs): split by
    source with ``seed``, resized to ``input_size``, normalised, with its preprocessing."""
    import torch

    from hwnas.evaluators.datasets import Source, _prepare

    images, y, sources = generate(level, copies, size)
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 255.0   # (N, 1, size, size)
    # The raw image a deployed model is fed is the generated uint8 canvas at its native size.
    source = Source((size, size), 1, "HW", "grey", 1.0 / 255.0, CLASS_NAMES)
    split = split_by_source(y, sources, val_fraction, max_samples, seed)
    return _prepare(NAME, x, np.array(y), input_size, in_channels, val_fraction, max_samples,
                    seed, source, split=split)


def split_by_source(y: np.ndarray, sources: np.ndarray, val_fraction: float = 0.2,
                    max_samples: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) image indices with no source image on both sides.

    Sources are split stratified by label (``seed``); with ``max_samples`` a stratified
    subset of each side is kept, ``val_fraction`` of it (at least one per class) from
    validation, so any cap leaves the two sides disjoint by source."""
    from sklearn.model_selection import train_test_split

    from spaces.errors import HwnasError

    y, sources = np.asarray(y), np.asarray(sources)
    uniq, first = np.unique(sources, return_index=True)
    src_tr, src_va = train_test_split(uniq, test_size=val_fraction, stratify=y[first],
                                      random_state=seed)
    is_val = np.isin(sources, src_va)
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if max_samples is not None and max_samples < len(y):
        classes = len(np.unique(y))
        n_va = min(len(va), max(classes, int(round(max_samples * val_fraction))))
        n_tr = min(len(tr), max_samples - n_va)
        if n_tr < classes:
            raise HwnasError(f"max_samples={max_samples} leaves fewer training images than "
                             f"the {classes} classes")
        tr = _stratified_subset(tr, y, n_tr, seed)
        va = _stratified_subset(va, y, n_va, seed)
    return tr, va


def _stratified_subset(idx: np.ndarray, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    if n >= len(idx):
        return idx
    keep, _ = train_test_split(idx, train_size=n, stratify=y[idx], random_state=seed)
    return np.sort(keep)
