"""The one-shot engine: train one supernet, then answer every budget from it.

Train once (``hwnas.oneshot``: a weight-sharing supernet of the run's space trained
with a sampler -- BigNAS' sandwich rule by default -- into ``RUN/supernet.ckpt``, resumable),
or reuse a trained one (``--supernet-ckpt``): a second device trains nothing. Then
NSGA-II (or the strategy --search-strategy names: hwnas.pipeline.oneshot_search) over
inherited accuracy x the device predictor's latency
(:mod:`hwnas.oneshot.search`) fills an archive that covers the whole latency range,
and each budget takes the archive's most accurate network predicted under it (a budget
that would share a smaller one's network first gets a band search between the two). The
chosen networks ship with inherited weights (fine-tuned ``--finetune-epochs``), and
the budget loop around the engine is the pipeline's own: time the file, audit,
refit the predictor, ask again (a refitted predictor re-ranks the archive and a
short search continues from its best).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.pipeline.engines import Choice, Engine, _predict
from hwnas.threads import available_cores, torch_threads
from hwnas.pipeline.state import PipelineState
from spaces import Arch
from spaces.errors import HwnasError

log = logging.getLogger(__name__)

CHECKPOINT = "supernet.ckpt"
ARCHIVE = "oneshot_archive.json"  # inherited accuracies, beside the checkpoint they came from
BATCH_SIZE = 64
#: New architectures a search evaluates when an archive already covers the latency range
#: (a later round after a refit, or a second device): a share of --queries. The archive
#: holds accuracies, which no device changes; a refitted or new predictor re-ranks it for
#: free, and these few evaluations refine the front it sees.
REFINE_SHARE = 20
#: Evaluations of the band search for each budget that would share a smaller budget's
#: network: a share of --queries (16 of the default 400, ~2 s on 2 cores).
BAND_SHARE = 25
#: ... and at most this share of --queries per round for all bands together (40 of 400),
#: and none for a band that already holds this many archived members (NSGA-II covered it;
#: on a device whose latency hardly depends on the architecture every band is crowded).
BAND_TOTAL_SHARE = 10
BAND_COVERED = 8


class OneShotEngine(Engine):
    name = "oneshot"

    def __init__(self, state: PipelineState) -> None:
        super().__init__(state)
        from hwnas.oneshot.search import Archive

        self.supernet: Any = None
        self.archive = Archive()
        self._searches = 0
        s = state.settings
        self.epochs = s.supernet_epochs_for(len(state.data.y_train), BATCH_SIZE)
        source = (f"supernet {Path(s.supernet_ckpt).name}" if s.supernet_ckpt
                  else f"supernet ({s.sampler}, {self.epochs} epochs)")
        state.recipe = self.recipe
        state.inherit = self.inherit
        self._source = source
        self.threads = int(s.threads) if s.threads else available_cores()

    # ---- stage one: the supernet -----------------------------------------------------------
    def trained_supernet(self, predictor: Any = None) -> Any:
        """The run's supernet, trained (or resumed, or loaded from ``--supernet-ckpt``).
        The attentive sampler draws its targets in the device's predicted latency (the
        paper's FLOPs or latency), so the predictor of the run is its cost model."""
        if self.supernet is not None:
            return self.supernet
        import torch

        from hwnas.oneshot import make_supernet
        from hwnas.oneshot.checkpoint import load_supernet
        from hwnas.oneshot.training import train_supernet

        st, s = self.state, self.state.settings
        torch.manual_seed(s.seed)
        supernet = make_supernet(st.space, st.data.num_classes, st.input_size)
        start = time.perf_counter()
        if s.supernet_ckpt:
            load_supernet(s.supernet_ckpt, supernet, dataset=st.data.name)
            st.say(f"  supernet: {s.supernet_ckpt} (trained before; nothing to train)")
        else:
            path = st.path(CHECKPOINT)
            options: dict[str, Any] = {}
            if s.sampler == "attentive" and predictor is not None:
                options["cost"] = lambda arch: float(_predict(predictor, [arch])[0])
            with torch_threads(self.threads):
                result = train_supernet(supernet, st.data, s.sampler, self.epochs,
                                        batch_size=BATCH_SIZE, seed=s.seed, checkpoint=path,
                                        resume=True, sampler_options=options)
            st.say(f"  supernet trained once: {s.sampler} sampler, {self.epochs} epochs, "
                   f"{self.threads} thread{'s' if self.threads != 1 else ''}, "
                   f"{time.perf_counter() - start:.0f} s -> {path.name}"
                   + (f" (resumed at step {result.start_step})"
                      if getattr(result, "start_step", 0) else ""))
        self.supernet = supernet.eval()
        self._load_archive(Path(s.supernet_ckpt) if s.supernet_ckpt else st.path(CHECKPOINT))
        return self.supernet

    # ---- accuracy once, latency per device --------------------------------------------------
    def _archive_key(self, checkpoint: Path) -> dict[str, Any]:
        """What an inherited accuracy depends on: the weights, the data and the calibration
        seed -- not the device. A second device reusing the checkpoint reuses them too."""
        import hashlib

        digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        return {"checkpoint_sha256": digest, "data": self.state.data.describe(),
                "seed": int(self.state.settings.seed)}

    def _load_archive(self, checkpoint: Path) -> None:
        """Inherited accuracies already measured with these weights on this data: this run's
        own (a resumed run) or the first run's, beside the checkpoint it shares."""
        import json

        self._key = self._archive_key(checkpoint)
        # a second device copies the first one's exported networks (same weights, same files)
        # and only times them again
        if checkpoint.parent.resolve() != self.state.run_path.resolve():
            self.state.shared_runs = [checkpoint.parent]
        space = self.state.space
        for path in (self.state.path(ARCHIVE), checkpoint.parent / ARCHIVE):
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(stored, dict) or stored.get("key") != self._key:
                continue
            for text, acc in (stored.get("accuracy") or {}).items():
                try:
                    self.archive.accuracy.setdefault(space.from_string(text), float(acc))
                except (ValueError, TypeError, HwnasError):  # a string of another space
                    continue
            self.state.say(f"  {len(self.archive)} inherited accuracies of this supernet reused "
                           f"from {path}")
            return

    def _save_archive(self) -> None:
        import json

        from spaces.core import atomic_write

        space = self.state.space
        record = {"key": self._key, "accuracy": {space.to_string(a): acc for a, acc
                                                 in self.archive.accuracy.items()}}
        atomic_write(self.state.path(ARCHIVE), json.dumps(record))

    # ---- stage two: search the supernet ----------------------------------------------------
    def _accuracy(self, archs: list[Arch]) -> np.ndarray:
        from hwnas.oneshot.evaluate import inherited_accuracy

        supernet, data, seed = self.trained_supernet(), self.state.data, self.state.settings.seed
        with torch_threads(self.threads):
            return np.array([inherited_accuracy(supernet, a, data, seed=seed) for a in archs])

    def _search(self, predictor: Any) -> None:
        from hwnas.oneshot.search import nsga2

        s = self.state.settings
        fresh = len(self.archive) == 0
        evaluations = s.queries if self._searches == 0 and fresh else max(10, s.queries // REFINE_SHARE)
        start: list[Arch] = []
        if len(self.archive):  # continue from the best the current predictor sees
            ranked = sorted(self.archive.accuracy, key=lambda a: -self.archive.accuracy[a])
            start = ranked[:32]
        began = time.perf_counter()
        if s.search_strategy is None:
            nsga2(self.state.space, self._accuracy, lambda archs: _predict(predictor, archs),
                  evaluations, seed=s.seed + self._searches, archive=self.archive, start=start)
        else:
            from hwnas.pipeline.oneshot_search import ArchiveEvaluator, search_with_strategy

            checkpoint = s.supernet_ckpt or str(self.state.path(CHECKPOINT))
            evaluator = ArchiveEvaluator(self.archive, self._accuracy,
                                         lambda archs: _predict(predictor, archs),
                                         self.trained_supernet(), self.state.data, checkpoint)
            search_with_strategy(s.search_strategy, self.state.space, evaluator, evaluations,
                                 s.seed + self._searches)
        self._searches += 1
        self._save_archive()
        self.state.say(f"  one-shot search: {len(self.archive)} architectures evaluated on the "
                       f"supernet so far ({time.perf_counter() - began:.0f} s)")

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        from hwnas.oneshot.search import best_under

        space = self.state.space
        self.trained_supernet(predictor)
        self._search(predictor)
        tried = [{space.from_string(t) for t in (avoid[i] if avoid else set())}
                 for i in range(len(targets))]
        predicted = self._fill_gaps(targets, predictor, tried)
        out = []
        for i, target in enumerate(targets):
            arch = best_under(self.archive, predicted, float(target), tried[i])
            arch = self._within_macs(arch, None)
            ms = predicted.get(arch)
            if ms is None:
                ms = float(_predict(predictor, [arch])[0])
            out.append(Choice(float(target), arch, float(ms),
                              extra={"how": "oneshot",
                                     "search_accuracy": self.archive.accuracy.get(arch)}))
            if on_target is not None:
                on_target(out[-1])
        return out

    def _fill_gaps(self, targets: Sequence[float], predictor: Any,
                   tried: list[set[Arch]]) -> dict[Arch, float]:
        """Where a budget would get the same network as a smaller one, search the band
        between that network's predicted latency and the budget (SPOS's constrained
        evolution, :func:`hwnas.oneshot.search.search_band`) before giving up on it: a user
        asking for ten budgets should get ten networks wherever the supernet has a more
        accurate one for the larger budget. Returns every archived architecture's predicted
        latency (the archive once, then what the band searches added)."""
        from hwnas.oneshot.search import best_under, search_band

        s = self.state.settings
        latency = lambda archs: _predict(predictor, archs)  # noqa: E731
        began, filled = time.perf_counter(), 0
        per_band, total = max(8, s.queries // BAND_SHARE), max(8, s.queries // BAND_TOTAL_SHARE)
        archs = list(self.archive.accuracy)
        predicted = dict(zip(archs, _predict(predictor, archs)))
        for attempt, i in enumerate(np.argsort(np.asarray(targets, dtype=float))):
            smaller = [j for j in range(len(targets)) if targets[j] < targets[i]]
            chosen = {best_under(self.archive, predicted, float(targets[j]), tried[j])
                      for j in smaller}
            arch = best_under(self.archive, predicted, float(targets[i]), tried[i])
            low, high = float(predicted[arch]), float(targets[i])
            members = sum(low < m <= high for m in predicted.values())
            # a band the search already covers holds nothing better: do not search it again
            if arch not in chosen or low > high or members >= BAND_COVERED or filled >= total:
                continue
            new = search_band(self.state.space, self._accuracy, latency, self.archive, low, high,
                              min(per_band, total - filled),
                              seed=s.seed + 1000 * self._searches + attempt)
            if new:
                predicted.update(zip(new, _predict(predictor, new)))
                filled += len(new)
        if filled:
            self._save_archive()
            self.state.say(f"  band search: {filled} architectures evaluated between budgets "
                           f"that shared a network ({time.perf_counter() - began:.0f} s)")
        return predicted

    # ---- what ships ------------------------------------------------------------------------
    def recipe(self) -> str:
        """How shipped networks get their weights: exported networks depend on the
        checkpoint's bytes, the fine-tune, the data and the seed -- not on the device."""
        self.trained_supernet()
        s = self.state.settings
        return (f"inherited from supernet sha256:{self._key['checkpoint_sha256'][:16]}, "
                f"fine-tune {s.finetune_epochs} on {self.state.data.name}, seed {s.seed}")

    def inherit(self, arch: Arch) -> Any:
        """``arch`` with the supernet's weights, fine-tuned as the settings say."""
        from hwnas.export_train import finetune_for_export

        st, s = self.state, self.state.settings
        module = self.trained_supernet().extract(arch).cpu().train()
        return finetune_for_export(st.space, module, st.data, s.finetune_epochs,
                                   source=f"inherited from the {self._source}",
                                   input_size=st.input_size, seed=s.seed, threads=self.threads)
