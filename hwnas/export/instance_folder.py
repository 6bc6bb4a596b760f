"""An InstaNAS deployment: one folder holding the controller, its paths and a manifest,
and the small router that runs them (numpy + ONNX Runtime).

Why a folder and not one graph: the point of an instance-aware network is that an
image runs the controller and *one* path; a single ONNX graph with every path would
either run them all or need control flow that runtimes execute poorly. So each path is
its own verified ONNX file (the same export as every shipped network: parity with
torch at batch 1 and 8, metadata), the controller is one more, and ``manifest.json``
names them with their SHA-256, so a router never runs a file that was swapped or
altered after the export. The folder is written beside its target and renamed into
place: a failed export leaves no half-written folder, and an older folder of that name
is replaced only once the new one is complete and checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from hwnas.export.errors import ExportError
from spaces import Arch, Space
from spaces.core import atomic_write
from spaces.core.errors import DamagedFile, NotFound

MANIFEST = "manifest.json"
FORMAT = "hwnas-instanas/1"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _export_controller(controller: Any, input_shape: Sequence[int], target: Path,
                       info: Mapping[str, Any]) -> None:
    from hwnas import onnx_meta
    from hwnas.export.verify import check_model, export_and_verify
    from spaces.flops import count_cost

    model, _ = export_and_verify(controller, input_shape)
    cost = count_cost(controller, tuple(input_shape))
    onnx_meta.write_metadata(model, {"role": "instanas controller", "paths": controller.paths,
                                     "trained": "instanas", "macs": cost.macs,
                                     "params": cost.params, **dict(info)})
    check_model(model)
    atomic_write(target, model.SerializeToString())


def export_instance_folder(folder: str | Path, space: Space, controller: Any,
                           paths: Sequence[tuple[Arch, Any, Mapping[str, Any]]], *,
                           input_size: int, data: Any = None, info: Mapping[str, Any] | None = None,
                           profiler: Any = None, check_images: Any = None) -> dict[str, Any]:
    """Write ``folder``: ``controller.onnx``, ``path-<k>.onnx`` per ``(arch, module,
    record)`` of ``paths`` (the record -- accuracy, predicted latency, usage -- goes into
    the manifest and the file's metadata) and ``manifest.json``. With ``profiler`` every
    file is timed on it (batch 1, interleaved) and its latency is in the manifest. With
    ``check_images`` (float32 [N, C, H, W]) the router's output on them is compared with
    running each image's path directly before the folder is put in place. Returns the
    manifest."""
    from hwnas.export.api import export_arch

    input_shape = tuple(space.input_shape(input_size))
    with _staged(Path(folder).expanduser()) as work:
        _export_controller(controller, input_shape, work / "controller.onnx", info or {})
        entries = []
        for k, (arch, module, record) in enumerate(paths):
            name = f"path-{k}.onnx"
            export_arch(space, arch, work / name, model=module, input_size=input_size,
                        num_classes=data.num_classes if data is not None else None,
                        accuracy=record.get("accuracy"), measure=False, data=data,
                        metadata={"role": f"instanas path {k}", "trained": "supernet",
                                  **{f"instanas_{key}": value for key, value in record.items()}})
            entries.append({"file": name, "arch": space.to_string(arch), **dict(record)})
        files = [work / "controller.onnx", *[work / e["file"] for e in entries]]
        latency: list[float | None] = [None] * len(files)
        if profiler is not None:
            measured = profiler.measure_many(files, input_shape, 1)
            latency = [float(m.latency_ms) for m in measured]
        manifest = {
            "format": FORMAT, "space": space.key, "space_name": space.name,
            "input_shape": list(input_shape),
            "controller": {"file": "controller.onnx", "sha256": sha256_of(files[0]),
                           "latency_ms": latency[0]},
            "paths": [{**e, "sha256": sha256_of(f), "latency_ms": ms}
                      for e, f, ms in zip(entries, files[1:], latency[1:])],
            **dict(info or {})}
        atomic_write(work / MANIFEST, json.dumps(manifest, indent=2, default=float))
        if check_images is not None:
            check_router(work, check_images)
    return manifest


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build the new one in; renamed over ``target``
    when the body succeeds, removed in any case (with any a killed export left behind).
    ``target`` must not be something other than an InstaNAS folder."""
    if target.exists() and not (target / MANIFEST).is_file():
        raise ExportError(f"{target} exists and is not an InstaNAS folder; choose another place")
    work = target.parent / f".{target.name}.partial-{os.getpid()}"
    for stale in target.parent.glob(f".{target.name}.partial-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    try:
        try:
            work.mkdir(parents=True)
        except OSError as error:
            raise ExportError(f"cannot write {target}: {error.strerror or error}") from None
        yield work
        _put_in_place(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _put_in_place(work: Path, target: Path) -> None:
    """Rename the finished folder over ``target``; an older folder there is moved aside
    first and removed only once the new one is in place."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(work, target)
    except OSError:
        if old.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_router(folder: Path, images: Any) -> None:
    """The router's logits on ``images`` equal each image's path run directly."""
    router = InstanceRouter(folder)
    x = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    logits, chosen = router(x)
    for k, session in enumerate(router.sessions):
        mine = chosen == k
        if mine.any():
            direct = session.run(None, {router.input_name: x[mine]})[0]
            if not np.allclose(direct, logits[mine], rtol=1e-5, atol=1e-5):
                raise ExportError(f"the router's output differs from path {k} run directly")


class InstanceRouter:
    """Runs an InstaNAS folder: the controller picks a path per image, the path answers.

    Refuses a folder whose manifest is missing or damaged, or that names a file that is
    missing or whose bytes are not the ones exported (SHA-256)."""

    def __init__(self, folder: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)
                 ) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.controller = ort.InferenceSession(str(self.folder / self.manifest["controller"]["file"]),
                                               options, providers=list(providers))
        self.sessions = [ort.InferenceSession(str(self.folder / p["file"]), options,
                                              providers=list(providers))
                         for p in self.manifest["paths"]]
        self.input_name = self.controller.get_inputs()[0].name

    def choose(self, x: np.ndarray) -> np.ndarray:
        """The path index of each image (argmax of the controller)."""
        scores = self.controller.run(None, {self.input_name: np.asarray(x, dtype=np.float32)})[0]
        return scores.argmax(axis=1).astype(int)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, chosen path) per image; each image runs the controller and its path."""
        x = np.asarray(x, dtype=np.float32)
        chosen = self.choose(x)
        out: np.ndarray | None = None
        for k in np.unique(chosen):
            mine = chosen == k
            logits = self.sessions[int(k)].run(None, {self.input_name: x[mine]})[0]
            if out is None:
                out = np.zeros((len(x), logits.shape[1]), dtype=logits.dtype)
            out[mine] = logits
        return (out if out is not None else np.zeros((0, 0), dtype=np.float32)), chosen


def copy_instance_folder(source: str | Path, target: str | Path) -> dict[str, Any]:
    """Copy a checked InstaNAS folder to ``target`` (atomically, as the export writes it);
    the copy is checked again before it is put in place. Returns the manifest."""
    source, target = Path(source), Path(target).expanduser()
    read_manifest(source)
    if target.resolve() == source.resolve():
        raise ExportError(f"{target} is the folder being exported; choose another place")
    with _staged(target) as work:
        try:
            shutil.copytree(source, work, dirs_exist_ok=True)
        except OSError as error:
            raise ExportError(f"cannot write {target}: {error.strerror or error}") from None
        manifest = read_manifest(work)
    return manifest


def describe(folder: str | Path) -> list[tuple[str, str]]:
    """Rows for ``hwnas export --inspect FOLDER``: what the manifest promises (checked)."""
    m = read_manifest(Path(folder))
    rows = [("format", str(m["format"])), ("space", str(m.get("space"))),
            ("input shape", "x".join(str(v) for v in m.get("input_shape", []))),
            ("controller", f"{m['controller']['file']} ({_ms(m['controller'].get('latency_ms'))})")]
    for k, p in enumerate(m["paths"]):
        acc = p.get("accuracy")
        rows.append((f"path {k}", f"{p['file']}: {p.get('arch')}, "
                                  f"{'-' if acc is None else f'{float(acc):.2f}%'}, "
                                  f"{_ms(p.get('latency_ms'))}, usage {float(p.get('usage', 0)):.2f}"))
    if m.get("accuracy") is not None:
        rows.append(("routed accuracy", f"{float(m['accuracy']):.2f}% ({m.get('dataset', '?')} "
                                        f"validation)"))
    rows.append(("files", "present, SHA-256 as exported"))
    return rows


def _ms(value: Any) -> str:
    return "not timed" if value is None else f"{float(value):.4f} ms"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``, with every file it names present and unaltered."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise NotFound(f"{folder} has no {MANIFEST}: it is not an InstaNAS folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DamagedFile(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("paths"), list) or not manifest["paths"]:
        raise DamagedFile(f"{path} is not an InstaNAS manifest ({FORMAT})")
    for entry in [manifest.get("controller") or {}, *manifest["paths"]]:
        name = str(entry.get("file", ""))
        file = Path(folder) / name
        if not name or Path(name).name != name or not file.is_file():
            raise NotFound(f"{path} names {name or 'a file'!r}, which is not in {folder}")
        if sha256_of(file) != entry.get("sha256"):
            raise DamagedFile(f"{file} is not the file that was exported (its SHA-256 differs "
                              f"from the manifest's): it was altered or replaced")
    return manifest


__all__ = ["FORMAT", "InstanceRouter", "MANIFEST", "check_router", "copy_instance_folder",
           "describe", "export_instance_folder", "read_manifest", "sha256_of"]
