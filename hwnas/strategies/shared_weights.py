"""What strategies built on a one-shot supernet need from their evaluator, asked for in one
place so that every such strategy refuses a wrong evaluator with the same sentence."""

from __future__ import annotations

from typing import Any

from spaces.errors import HwnasError


def unwrapped(evaluator: Any) -> Any:
    """The evaluator inside caches and other wrappers (each keeps it as ``inner``)."""
    while getattr(evaluator, "inner", None) is not None:
        evaluator = evaluator.inner
    return evaluator


def supernet_and_data(evaluator: Any, strategy: str) -> tuple[Any, Any]:
    """The trained supernet and the data split behind a one-shot evaluator; one sentence
    naming what to pass otherwise."""
    evaluator = unwrapped(evaluator)
    supernet, data = getattr(evaluator, "supernet", None), getattr(evaluator, "data", None)
    if supernet is None or data is None:
        raise HwnasError(f"strategy {strategy!r} ranks architectures with a one-shot supernet's "
                         f"shared weights, so it needs --evaluator oneshot --supernet-ckpt FILE "
                         f"(trained with hwnas supernet train), not the "
                         f"{getattr(evaluator, 'name', type(evaluator).__name__)} evaluator")
    if getattr(evaluator, "hyper", None) is not None:  # SMASH: the shared tensors are untrained
        raise HwnasError(f"strategy {strategy!r} ranks architectures with a one-shot supernet's "
                         f"shared weights, but a SMASH checkpoint's weights are generated per "
                         f"architecture; use it with a strategy that only queries the "
                         f"evaluator (e.g. evolution)")
    return supernet, data


def cheap_latency(evaluator: Any) -> Any | None:
    """The evaluator's latency source when asking it costs nothing (a table or a
    predictor), else None: a pre-screen of many candidates must not profile them live."""
    source = getattr(unwrapped(evaluator), "latency", None)
    return source if source is not None and getattr(source, "cheap", False) else None
