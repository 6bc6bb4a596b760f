"""Supernet checkpoints: written atomically, checked byte for byte, refused when foreign.

A file is one header line naming the format, one JSON line (metadata, payload size
and SHA-256), then the ``torch.save`` payload (weights, optimiser, scheduler, sampler
state, RNG states, position). Why the wrapper around ``torch.save``: a truncated or
bit-flipped file must fail with one sentence, not load half-wrong weights, and the
metadata -- space key (which carries preset and options), input size, classes,
dataset, sampler, schedule -- can be compared before any tensor is read. The payload
is read with ``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from hwnas.oneshot.base import OneShotSupernet
from spaces.core import atomic_write
from spaces.core.errors import DamagedFile, Incompatible, InvalidOption, NotFound

log = logging.getLogger(__name__)

MAGIC = b"HWNAS-ONESHOT-CHECKPOINT\n"
VERSION = 1
# A header line longer than this is not ours (and is not read into memory whole).
MAX_HEADER = 1 << 20

# Settings a resumed run must share with the run that wrote the checkpoint: with any
# other value the rest of the run would not be the run that was started.
RESUME_SETTINGS = ("sampler", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                   "nesterov", "grad_clip", "seed", "steps_per_epoch", "objective")
#: What a checkpoint written before a setting existed trained with.
RESUME_DEFAULTS = {"objective": "labels"}


def supernet_meta(supernet: OneShotSupernet, dataset: str | None) -> dict[str, Any]:
    """What identifies the network a checkpoint's weights belong to."""
    space = supernet.space
    return {"space": space.name, "space_key": space.key, "input_size": supernet.input_size,
            "num_classes": supernet.num_classes, "dataset": dataset,
            "supernet": type(supernet).__name__}


def save_checkpoint(path: str | Path, meta: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``meta`` (JSON-friendly) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    payload = buffer.getvalue()
    header = {"version": VERSION, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest(), "meta": dict(meta)}
    line = (json.dumps(header, sort_keys=True) + "\n").encode("utf-8")

    def write(handle: Any) -> None:
        handle.write(MAGIC)
        handle.write(line)
        handle.write(payload)

    return atomic_write(path, write)


def _read_header(path: Path, handle: Any) -> dict[str, Any]:
    magic = handle.read(len(MAGIC))
    if not magic:
        raise DamagedFile(f"checkpoint {path} is empty")
    if magic != MAGIC:
        raise DamagedFile(f"{path} is not an hwnas one-shot checkpoint (or its start is damaged)")
    line = handle.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise DamagedFile(f"checkpoint {path} is truncated inside its header")
    try:
        header = json.loads(line)
        ok = isinstance(header, dict) and isinstance(header.get("meta"), dict)
    except ValueError:
        ok = False
    if not ok:
        raise DamagedFile(f"checkpoint {path} has a damaged header")
    if header.get("version") != VERSION:
        raise DamagedFile(f"checkpoint {path} is of format version {header.get('version')!r}; "
                          f"this hwnas reads version {VERSION}")
    return header


def _open(path: str | Path) -> tuple[Path, Any]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no checkpoint at {path}")
    try:
        return path, path.open("rb")
    except OSError as error:
        raise DamagedFile(f"cannot read checkpoint {path}: {error.strerror or error}") from None


def objective_name(meta: Mapping[str, Any]) -> str:
    """The training objective a checkpoint's metadata names: "labels", "pi" or "smash"
    (checkpoints written before objectives existed trained on labels)."""
    objective = meta.get("objective", RESUME_DEFAULTS["objective"])
    return str(objective.get("name") if isinstance(objective, dict) else objective)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint, without reading its tensors."""
    path, handle = _open(path)
    with handle:
        return _read_header(path, handle)["meta"]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, state) of a checkpoint; DamagedFile naming the file if it is truncated,
    corrupt or not a checkpoint."""
    path, handle = _open(path)
    with handle:
        header = _read_header(path, handle)
        try:
            payload = handle.read()
        except OSError as error:
            raise DamagedFile(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if len(payload) != header.get("bytes"):
        raise DamagedFile(f"checkpoint {path} is truncated: {len(payload):,} of "
                          f"{header.get('bytes')!r} payload bytes")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise DamagedFile(f"checkpoint {path} is corrupt: its checksum does not match")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise DamagedFile(f"checkpoint {path} cannot be read ({type(error).__name__})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DamagedFile(f"checkpoint {path} holds no supernet weights")
    return header["meta"], state


def check_compatible(meta: Mapping[str, Any], supernet: OneShotSupernet, dataset: str | None,
                     path: str | Path) -> None:
    """Incompatible (one sentence naming the first mismatch) unless the checkpoint was
    trained for this supernet's space, preset and options, input size and classes, and
    (when ``dataset`` is given) on this dataset."""
    ours = supernet_meta(supernet, dataset)
    if meta.get("space") != ours["space"]:
        raise Incompatible(f"checkpoint {path} holds a supernet of space "
                           f"{meta.get('space_key')}, not {ours['space_key']}")
    if meta.get("space_key") != ours["space_key"]:
        raise Incompatible(f"checkpoint {path} holds {meta.get('space_key')}, another preset "
                           f"or options of {ours['space']} than {ours['space_key']}")
    if meta.get("input_size") != ours["input_size"]:
        raise Incompatible(f"checkpoint {path} was trained at {meta.get('input_size')} px "
                           f"inputs, not {ours['input_size']} px")
    if meta.get("num_classes") != ours["num_classes"]:
        raise Incompatible(f"checkpoint {path} has a {meta.get('num_classes')}-class "
                           f"classifier, not {ours['num_classes']} classes")
    if dataset is not None and meta.get("dataset") != dataset:
        raise Incompatible(f"checkpoint {path} was trained on dataset {meta.get('dataset')!r}, "
                           f"not {dataset!r}")


def check_resumable(meta: Mapping[str, Any], settings: Mapping[str, Any], path: str | Path) -> None:
    """InvalidOption (one sentence) if a training setting differs from the run that wrote
    the checkpoint."""
    for name in RESUME_SETTINGS:
        stored = meta.get(name, RESUME_DEFAULTS.get(name))
        if name in settings and stored != settings[name]:
            raise InvalidOption(f"cannot resume from {path}: it was started with {name}="
                                f"{stored!r}, not {settings[name]!r}; pass the same "
                                f"setting or start afresh without resume")


def load_supernet(path: str | Path, supernet: OneShotSupernet, dataset: str | None = None,
                  map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint's weights into ``supernet`` after the checks; returns its metadata."""
    meta, state = load_checkpoint(path, map_location)
    check_compatible(meta, supernet, dataset, path)
    load_weights(supernet, state, path)
    return meta


def load_weights(supernet: OneShotSupernet, state: Mapping[str, Any], path: str | Path) -> None:
    """``state["model"]`` into ``supernet``; Incompatible if its tensors do not fit (a
    supernet of another implementation for the same space)."""
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as error:
        last = str(error).strip().splitlines()[-1].strip() if str(error).strip() else ""
        raise Incompatible(f"checkpoint {path} does not fit this {type(supernet).__name__} "
                           f"({last})") from None


__all__ = ["MAGIC", "RESUME_SETTINGS", "VERSION", "check_compatible", "check_resumable",
           "load_checkpoint", "load_supernet", "load_weights", "read_meta", "save_checkpoint",
           "supernet_meta"]
