"""Process set-up shared by every stage: device choice, thread count, seeds, distributed rank."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.sections import RunSection


def select_device(run: RunSection) -> torch.device:
    if run.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("run.device: 'cuda' requested but torch sees no CUDA device (use 'auto' or 'cpu')")
    if run.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return torch.device("cuda", local_rank)


def setup(run: RunSection) -> torch.device:
    """Seed every generator and fix CPU threads; returns the device to compute on."""
    if run.threads:
        torch.set_num_threads(run.threads)
    seed = run.seed + rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return select_device(run)


def rank() -> int:
    return (
        torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    )


def is_main_process() -> bool:
    """Only rank 0 writes artifacts and logs under torchrun."""
    return rank() == 0
