"""The run's picture: every evaluated point, the Pareto front highlighted, budgets drawn.

Figures are rendered to memory and written with :func:`spaces.core.atomic_write`
(:func:`save_png`), so a bad path or a full disk leaves the previous picture and
fails in one sentence.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hwnas import pareto
from hwnas.objectives import Objective, feasible_mask, format_number
from spaces.core import atomic_write

LABELS = {"accuracy": "accuracy (%)", "latency_ms": "latency (ms)", "macs": "MACs", "params": "params"}


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG bytes in memory, close it, and write the file atomically."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return atomic_write(path, buffer.getvalue())


def _axes_pairs(objectives: Sequence[Objective]) -> list[tuple[Objective, Objective]]:
    """(x, y) pairs: y is the first searched objective, x each other plotted metric."""
    searched = [o for o in objectives if o.searched]
    first = searched[0]
    others = searched[1:] or [o for o in objectives if not o.searched]
    return [(x, first) for x in others]


def plot_front(history: pd.DataFrame, objectives: Sequence[Objective], path: str | Path,
               title: str = "") -> Path:
    """Save the scatter of ``history`` with its front to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = _axes_pairs(objectives)
    n = max(len(pairs), 1)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.5), squeeze=False)
    ok = feasible_mask(history, objectives) if len(history) else np.zeros(0, bool)
    front = pareto.front_of(history, objectives)
    for ax, pair in zip(axes[0], pairs or [None]):
        if pair is None:  # one objective, no budget: accuracy over the search
            y = objectives[0]
            ax.plot(history["query"], history[y.name], ".", color="0.6", label="evaluated")
            ax.set_xlabel("query")
            ax.set_ylabel(LABELS.get(y.name, y.name))
            continue
        x, y = pair
        ax.scatter(history.loc[ok, x.name], history.loc[ok, y.name], s=12, color="0.65",
                   label="evaluated")
        if (~ok).any():
            ax.scatter(history.loc[~ok, x.name], history.loc[~ok, y.name], s=12, marker="x",
                       color="0.8", label="over budget")
        if len(front):
            f = front.sort_values(x.name)
            ax.step(f[x.name], f[y.name], where="post",
                    color="tab:red", alpha=0.6)
            ax.scatter(f[x.name], f[y.name], s=28, color="tab:red", zorder=3,
                       label=f"Pareto front ({len(front)})")
        for o, draw in ((x, ax.axvline), (y, ax.axhline)):
            if o.budget is not None:
                draw(o.budget, color="tab:blue", ls="--", lw=1,
                     label=f"budget {o.budget_text()}")
        if x.name in ("macs", "params"):
            ax.set_xscale("log")
        ax.set_xlabel(LABELS.get(x.name, x.name))
        ax.set_ylabel(LABELS.get(y.name, y.name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def front_table(front: pd.DataFrame, objectives: Sequence[Objective]) -> str:
    """The front as a plain-text table, numbers in readable units."""
    if front.empty:
        return "(no architecture meets the budgets)"
    cols = ["arch", *[o.name for o in objectives]]
    view = front[cols].copy()
    width = int(view["arch"].astype(str).str.len().max())
    formats = {"arch": lambda v: str(v).ljust(width)}
    for o in objectives:
        if o.name in ("macs", "params"):
            formats[o.name] = format_number
        elif o.name == "accuracy":
            formats[o.name] = lambda v: f"{v:.2f}"
        else:
            formats[o.name] = lambda v: f"{v:.3f}"
    return view.to_string(index=False, formatters=formats, justify="left")
