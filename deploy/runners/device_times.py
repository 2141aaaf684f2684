"""What a GPU runner measures for one inference besides host latency (the fields trtexec reports)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceTimes:
    """Milliseconds: host time to enqueue all work, and CUDA-event times of H2D copy, compute and D2H copy."""

    enqueue_ms: float
    h2d_ms: float
    compute_ms: float
    d2h_ms: float
