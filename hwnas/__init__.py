"""hwnas: hardware-aware, multi-objective neural architecture search.

Kept import-light (no torch at import time) so the CLI starts quickly; ``hwnas.search``
imports the pipeline when called.
"""

from typing import Any

__version__ = "0.1.0"


def search(out: Any = None, **options: Any) -> Any:
    """The whole pipeline (profile -> predictor -> search -> audit -> ONNX); returns a
    :class:`hwnas.pipeline.PipelineResult` (``.front`` DataFrame, ``.paths``). See
    :func:`hwnas.pipeline.search` for the options."""
    from hwnas.pipeline import search as run

    return run(out, **options)
