"""How commands show moments and durations: UTC times and percentiles (no rich needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

__all__ = ["percentile", "when"]


def when(timestamp: float | None) -> str | None:
    """Epoch seconds as ``2026-01-31 12:00:00`` (UTC)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def percentile(values: Sequence[float], share: float, *, digits: int | None = 1) -> float | None:
    """The nearest-rank percentile (``share`` 0.5 for the median) rounded to ``digits``
    (None: not rounded); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    value = ordered[max(0, math.ceil(share * len(ordered)) - 1)]
    return value if digits is None else round(value, digits)
