"""How the report shows numbers and metrics: fmt / fmt_interval (None and non-finite as "n/a", never an empty cell),
metric_name (embedded metrics keep their own names: "FD (embedded feature net)", never "FID").

A new metric is registered here by its display name in METRIC_NAMES (its direction: metrics.api.LOWER_IS_BETTER).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

METRIC_NAMES = {
    "fid": "FID", "sfid": "sFID", "is": "IS", "precision": "Precision", "recall": "Recall", "kid": "KID",
    "fd_embed": "FD (embedded feature net)", "is_embed": "IS (embedded feature net)",
    "precision_embed": "Precision (embedded feature net)", "recall_embed": "Recall (embedded feature net)",
    "kid_embed": "KID (embedded feature net)", "fd_dinov2": "FD (DINOv2)",
    "class_accuracy": "Class accuracy (embedded feature net)",
}


def fmt(v: Any, digits: int = 3) -> str:
    """A number as text; None (not measured) as 'n/a' -- never an empty cell."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def fmt_interval(iv: Any, digits: int = 3) -> str:
    if not iv or len(iv) != 2:
        return "n/a"
    return f"[{fmt(iv[0], digits)}, {fmt(iv[1], digits)}]"


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def fmt_duration(seconds: Any) -> str:
    """A wall time as a reader says it: 12.3 s, 1 min 27 s, 3 h 05 min, 2 d 4 h; None as 'n/a'."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "n/a"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"
