"""Stage 6 of ``--strategy instanas``: an architecture per image (InstaNAS) from the supernet.

The one-shot engine has trained the supernet and searched its accuracy x latency front
(``oneshot_archive.json``); the budgets have shipped one fixed network each. Here
:mod:`hwnas.oneshot.instanas` takes ``--paths`` architectures spread over that front,
gives each its inherited weights (fine-tuned ``--finetune-epochs`` like every network
the run ships; BN recalibrated when 0), trains the per-image controller on
a reward of correctness and the device predictor's latency, and writes
``RUN/instanas/`` (controller, paths, manifest; :mod:`hwnas.export.instance_folder`).
Then every file of the folder is timed on the run's device and the controller's mean
latency per image -- controller included -- is set against the fastest of its own paths
that reaches the same validation accuracy alone (same weights, same device, same timing
run), which is what a user without the controller would ship, and against the same
paths mixed at random at that accuracy (image-blind), which isolates what the choice
per image is worth.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState
from spaces.core.errors import DamagedFile

FOLDER = "instanas"


class InstaNASStage(Stage):
    name = "instanas"

    def title(self, state: PipelineState) -> str:
        return (f"InstaNAS: a controller that picks one of {state.settings.instanas_paths} "
                f"supernet paths per image")

    def run(self, state: PipelineState) -> dict[str, Any]:
        import torch

        from hwnas.export.instance_folder import export_instance_folder
        from hwnas.oneshot import instanas, make_supernet
        from hwnas.oneshot.checkpoint import load_supernet
        from hwnas.pipeline.engine_oneshot import ARCHIVE, CHECKPOINT
        from hwnas.pipeline.engines import _predict

        s, space, data = state.settings, state.space, state.data
        began = time.perf_counter()
        checkpoint = Path(s.supernet_ckpt) if s.supernet_ckpt else state.path(CHECKPOINT)
        torch.manual_seed(s.seed)
        supernet = make_supernet(space, data.num_classes, state.input_size)
        load_supernet(checkpoint, supernet, dataset=data.name)
        supernet.eval()
        accuracy = self._archive(state, checkpoint.parent / ARCHIVE)
        archs = list(accuracy)
        predicted = dict(zip(archs, (float(v) for v in _predict(state.predictor, archs))))
        chosen = instanas.choose_paths(accuracy, predicted, int(s.instanas_paths))
        nets, accs = [], []
        for arch in chosen:  # the weights a shipped network of this run gets (--finetune-epochs)
            net, acc = instanas.path_network(supernet, arch, data, s.finetune_epochs,
                                             state.input_size, s.seed)
            nets.append(net)
            accs.append(acc)
        cost = np.array([predicted[a] for a in chosen]) / max(predicted[a] for a in chosen)
        config = instanas.ControllerConfig(latency_weight=float(s.latency_weight), seed=s.seed)
        controller = instanas.InstanceController(space.in_channels, state.input_size,
                                                 len(chosen), config.width, config.low_res,
                                                 seed=config.seed)
        rewards = instanas.reward_table(instanas.correctness(nets, data.x_train, data.y_train),
                                        cost, config)
        history = instanas.train_controller(controller, data.x_train, rewards, config)
        routing = instanas.route(controller, data.x_val,
                                 instanas.correctness(nets, data.x_val, data.y_val))
        records = [{"accuracy": acc, "predicted_ms": predicted[a], "usage": u}
                   for a, acc, u in zip(chosen, accs, routing.usage)]
        profiler = state.meter.profiler()
        try:
            manifest = export_instance_folder(
                state.path(FOLDER), space, controller, list(zip(chosen, nets, records)),
                input_size=state.input_size, data=data, profiler=profiler,
                check_images=data.x_val[:64].numpy(),
                info={"accuracy": routing.accuracy, "dataset": data.name,
                      "device": state.meter.label, "controller_config": instanas.config_dict(config),
                      "controller_reward": history.reward[-1],
                      "supernet_checkpoint": str(checkpoint)})
        finally:
            profiler.close()
        summary = self._summary(manifest)
        manifest.update(summary)
        from spaces.core import atomic_write  # the summary beside the folder (not hashed in it)

        atomic_write(state.path(FOLDER + ".json"), json.dumps(manifest, indent=2, default=float))
        self._show(state, manifest)
        return {"folder": FOLDER, "seconds": time.perf_counter() - began, **summary}

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        from hwnas.export.instance_folder import read_manifest

        read_manifest(state.path(FOLDER))  # a damaged folder fails in one sentence
        summary = state.path(FOLDER + ".json")
        try:
            manifest = json.loads(summary.read_text(encoding="utf-8"))
            self._show(state, manifest)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DamagedFile(f"cannot read the InstaNAS summary {summary}: {error}; the run "
                              f"folder was damaged") from None

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _archive(state: PipelineState, path: Path) -> dict[Any, float]:
        """The inherited accuracies the one-shot search measured (this run's archive, or the
        one beside a reused checkpoint)."""
        from hwnas.pipeline.engine_oneshot import ARCHIVE

        for candidate in (state.path(ARCHIVE), path):
            try:
                stored = json.loads(candidate.read_text(encoding="utf-8"))
                return {state.space.from_string(k): float(v)
                        for k, v in stored["accuracy"].items()}
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                raise DamagedFile(f"cannot read the one-shot archive {candidate}: {error}") from None
        raise DamagedFile(f"the one-shot search left no archive ({state.path(ARCHIVE)}); "
                          f"the run folder was damaged")

    @staticmethod
    def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
        from hwnas.oneshot.instanas import best_fixed, mean_latency, mixture_latency

        paths = manifest["paths"]
        ms = [float(p["latency_ms"]) for p in paths]
        accs = [float(p["accuracy"]) for p in paths]
        controller_ms = float(manifest["controller"]["latency_ms"])
        mean_ms = mean_latency([p["usage"] for p in paths], ms, controller_ms)
        fixed = best_fixed(accs, ms, float(manifest["accuracy"]))
        return {"mean_ms": mean_ms, "controller_ms": controller_ms, "fixed_path": fixed,
                "fixed_ms": ms[fixed], "fixed_accuracy": accs[fixed],
                "latency_reduction": 1.0 - mean_ms / ms[fixed],
                "blind_mix_ms": mixture_latency(accs, ms, float(manifest["accuracy"]))}

    @staticmethod
    def _show(state: PipelineState, m: dict[str, Any]) -> None:
        say = state.say
        say(f"  {'k':>2}  {'val acc':>7}  {'pred ms':>8}  {'file ms':>8}  {'usage':>5}  arch")
        for k, p in enumerate(m["paths"]):
            say(f"  {k:>2}  {p['accuracy']:7.2f}  {p['predicted_ms']:8.4f}  "
                f"{p['latency_ms']:8.4f}  {p['usage']:5.2f}  {p['arch']}")
        say(f"  controller file {m['controller_ms']:.4f} ms; per image (controller + chosen "
            f"path): {m['mean_ms']:.4f} ms at {m['accuracy']:.2f}% validation accuracy")
        say(f"  the fastest single path as accurate: path {m['fixed_path']} "
            f"({m['fixed_accuracy']:.2f}%, {m['fixed_ms']:.4f} ms): InstaNAS saves "
            f"{100 * m['latency_reduction']:.1f}% of its latency per image"
            + ("" if m["fixed_accuracy"] >= m["accuracy"] - 1e-9 else
               " (no single path is as accurate: compared with the most accurate one)"))
        if m.get("blind_mix_ms") is not None:
            say(f"  image-blind baseline: the paths mixed at random reach that accuracy at "
                f"{m['blind_mix_ms']:.4f} ms per image (the controller's choice per image is "
                f"worth {100 * (1 - m['mean_ms'] / m['blind_mix_ms']):.1f}% of it)")
        say(f"  folder: {state.path(FOLDER)} (router: hwnas.export.instance_folder.InstanceRouter)")
