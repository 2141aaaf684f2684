"""Bounds on the tensors a command will allocate, checked before the allocation: a typo in a shape or a
batch size is a usage error naming the flag, not an out-of-memory failure blamed on another setting."""

from __future__ import annotations

import math
import os

from cplitool.toolchain.errors import UsageError

MAX_SHAPE_RANK = 5  # per-sample dimensions: images (C,H,W) and video clips (C,T,H,W) need at most 4
MAX_SAMPLE_ELEMENTS = 1 << 28  # one sample of 256 Mi values (1 GiB in FP32); larger is a typo, not a model


def memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_sample(shape: tuple[int, ...], where: str) -> None:
    """One sample's shape (no batch): a few positive sizes, at most MAX_SAMPLE_ELEMENTS values."""
    if len(shape) > MAX_SHAPE_RANK:
        raise UsageError(f"{where}: {len(shape)} sizes per sample; expected at most {MAX_SHAPE_RANK} (no batch size)")
    elements = math.prod(shape)
    if elements > MAX_SAMPLE_ELEMENTS:
        raise UsageError(
            f"{where}: one sample of {elements:,} values ({list(shape)}) is more than {MAX_SAMPLE_ELEMENTS:,}; "
            "check the sizes"
        )


def check_batch_memory(shape: tuple[int, ...], batches: list[int], itemsize: int, where: str) -> None:
    """The largest input batch must fit in a quarter of the machine's memory (outputs and activations
    need the rest): otherwise a usage error naming `where` (the flag or file that sets it)."""
    need = max(batches, default=1) * math.prod(shape) * itemsize
    have = memory_bytes()
    if need > have // 4:
        raise UsageError(
            f"{where}: batch {max(batches)} of {list(shape)} needs {need / 2**30:.1f} GiB for its input alone, "
            f"more than a quarter of this machine's {have / 2**30:.1f} GiB; use a smaller --batch"
        )
