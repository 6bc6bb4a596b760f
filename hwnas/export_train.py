"""Train a network before exporting it (``hwnas export --train digits --epochs N``).

The weights are trained with exactly the search's recipe (:class:`TrainEvaluator`:
same data split, seed, optimiser and schedule), so the accuracy stored in the
ONNX file is the number a search with the same settings reports for that
architecture. ``TrainEvaluator`` returns only the accuracy; the trained module is
taken from the one place it is handed over, its validation step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces.errors import HwnasError


@dataclass
class TrainedNet:
    module: Any
    num_classes: int
    accuracy: float  # validation accuracy, %
    trained_on: str  # e.g. "digits (1437 train / 360 val), 3 epochs, seed 0"
    data: Any = None  # the datasets.DataSplit trained and validated on

    def deploy_metadata(self) -> dict[str, Any]:
        """What a deployer needs beside the graph: preprocessing, labels, what the accuracy is."""
        data = self.data
        out: dict[str, Any] = {"trained": True, "trained_on": self.trained_on,
                               "accuracy_source": "these weights", "accuracy_unit": "%"}
        if data is not None:
            out.update(dataset=data.name, class_names=list(data.class_names) or None,
                       accuracy_split=f"validation: {len(data.y_val)} images held out of the "
                                      f"training data (seeded split), never trained on")
            if data.preprocessing is not None:
                out["preprocessing"] = data.preprocessing.to_json()
        return out


def train_for_export(space: Any, arch: Any, dataset: str = "digits", epochs: int = 3, *,
                     input_size: int | None = None, num_classes: int | None = None,
                     root: str | Path | None = None, seed: int = 0, threads: int = 1,
                     max_samples: int | None = None) -> TrainedNet:
    """Train ``arch`` on ``dataset`` (``digits``, ``cifar10``/``cifar100`` under ``root``,
    or an ImageFolder path) and return the trained module in eval mode with its
    validation accuracy."""
    import torch

    from hwnas.evaluators import datasets
    from hwnas.evaluators.train import TrainEvaluator

    class _KeepModel(TrainEvaluator):
        trained: Any = None

        def _val_accuracy(self, model: Any) -> float:
            self.trained = model
            return super()._val_accuracy(model)

    size = input_size or space.default_input_size
    data = datasets.load(dataset, size, space.in_channels, root=root, seed=seed,
                         max_samples=max_samples)
    if num_classes is not None and num_classes != data.num_classes:
        raise HwnasError(f"{dataset} has {data.num_classes} classes, not the "
                         f"{num_classes} given with --num-classes")
    trainer = _KeepModel(space, ["accuracy"], data, epochs=epochs, seed=seed,
                         input_size=size, threads=threads)
    accuracy = trainer.train_one(space.validate(arch))
    if trainer.trained is None:  # TrainEvaluator changed how it validates
        raise RuntimeError("TrainEvaluator did not hand over the trained model")
    module = trainer.trained.to(memory_format=torch.contiguous_format).eval()
    info = data.describe()
    return TrainedNet(module, data.num_classes, float(accuracy),
                      f"{dataset} ({info['train']} train / {info['val']} val), "
                      f"{epochs} epoch{'s' if epochs != 1 else ''}, seed {seed}", data)


def finetune_for_export(space: Any, module: Any, data: Any, epochs: int, *, source: str,
                        input_size: int, seed: int = 0, lr: float = 1e-3,
                        threads: int = 1) -> TrainedNet:
    """A network holding inherited weights (``module``, e.g. ``supernet.extract(arch)``),
    fine-tuned for ``epochs`` with the search's recipe at a lower learning rate (0: only
    its BN statistics are re-estimated on training images), with its validation accuracy.
    ``source`` says where the weights came from (stored as ``trained_on``)."""
    import torch

    from hwnas.evaluators.train import TrainEvaluator

    from hwnas.oneshot.evaluate import recalibrated_accuracy

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        if epochs == 0:  # the inherited weights as they are: the one-shot evaluator's protocol
            accuracy = recalibrated_accuracy(module, data, seed=seed)
        else:
            trainer = TrainEvaluator(space, ["accuracy"], data, epochs=epochs, seed=seed, lr=lr,
                                     input_size=input_size, threads=threads)
            accuracy = trainer.fit(module)
    finally:
        torch.set_num_threads(previous)
    info = data.describe()
    tuned = f", fine-tuned {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else ""
    return TrainedNet(module.to(memory_format=torch.contiguous_format).eval(), data.num_classes,
                      float(accuracy), f"{source}{tuned} on {data.name} ({info['train']} train "
                      f"/ {info['val']} val), seed {seed}", data)
