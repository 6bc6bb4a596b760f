"""Stage 6: did the predictor tell the truth about the networks it chose?

The engines chose each network by its *predicted* latency; here every chosen
network's latency has been measured on the device. A network whose prediction
missed by more than the tolerance is exactly the kind of architecture the
predictor needs to see: its measurement is already in the store (stage 5
commits it), and the predictor is refitted on everything stored, with the
held-out figures before and after printed so the refit is judged, not assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def audit_frame(chosen: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Predicted vs measured latency per chosen network, with the relative error."""
    out = chosen[["arch", "budget_ms", "predicted_ms", "measured_ms"]].copy()
    out["error"] = (out["predicted_ms"] - out["measured_ms"]) / out["measured_ms"]
    out["missed"] = out["error"].abs() > tolerance
    return out


def audit_text(frame: pd.DataFrame, tolerance: float) -> str:
    show = frame.assign(error=[f"{100 * e:+.1f}%" for e in frame["error"]],
                        missed=["yes" if m else "" for m in frame["missed"]])
    show = show.rename(columns={"budget_ms": "budget ms", "predicted_ms": "predicted ms",
                                "measured_ms": "measured ms",
                                "missed": f"off by >{100 * tolerance:.0f}%"})
    return show.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def plot_audit(frame: pd.DataFrame, holdout: pd.DataFrame | None, path: str | Path,
               tolerance: float, title: str = "") -> Path:
    """Predicted vs measured latency: the chosen networks over the held-out set, with the
    y = x line and the +-tolerance band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    values = [frame["measured_ms"], frame["predicted_ms"]]
    if holdout is not None and not holdout.empty:
        ax.scatter(holdout["measured_ms"], holdout["predicted_ms"], s=12, color="0.65",
                   label=f"held-out random archs ({len(holdout)})")
        values += [holdout["measured_ms"], holdout["predicted_ms"]]
    lo = float(min(v.min() for v in values)) * 0.9
    hi = float(max(v.max() for v in values)) * 1.1
    line = np.array([lo, hi])
    ax.plot(line, line, color="k", lw=1, label="predicted = measured")
    ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="tab:blue",
                    alpha=0.12, label=f"+-{100 * tolerance:.0f}%")
    hit = frame[~frame["missed"]]
    miss = frame[frame["missed"]]
    ax.scatter(hit["measured_ms"], hit["predicted_ms"], s=60, marker="*", color="tab:green",
               label="chosen, within tolerance", zorder=3)
    if not miss.empty:
        ax.scatter(miss["measured_ms"], miss["predicted_ms"], s=60, marker="X", color="tab:red",
                   label="chosen, missed -> refit", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
