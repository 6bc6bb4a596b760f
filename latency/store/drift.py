"""Reading stored latencies on one scale across the groups they were timed in."""

from __future__ import annotations

import numpy as np
import pandas as pd


def drift_corrected(frame: pd.DataFrame) -> pd.Series:
    """``latency_ms`` with the machine's drift taken out (see devices.reference): each row
    times ``first reference_ms of its device / its group's reference_ms``, i.e. every group
    is put on the scale of the device's first measured group. The anchor is the *first*
    group so that adding rows never changes the corrected value of rows already stored
    (``frame`` is oldest first). Rows measured without a reference (imports, older
    files) keep their value."""
    if frame.empty:
        return frame.get("latency_ms", pd.Series(dtype=float)).astype(float)
    ref = pd.to_numeric(frame.get("reference_ms"), errors="coerce") if "reference_ms" in frame \
        else pd.Series(np.nan, index=frame.index)
    typical = ref.groupby(frame["device_id"]).transform("first")  # first non-missing
    factor = (typical / ref).where(ref.notna() & (ref > 0), 1.0)
    return frame["latency_ms"].astype(float) * factor
