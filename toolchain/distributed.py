"""torchrun support: join the process group torchrun describes in the environment, leave it afterwards.

Under `torchrun --nproc_per_node=N` every process runs the same command; cplitool.toolchain.train.fit wraps the
model in DistributedDataParallel and make_loader shards the training data once the group exists, and
only rank 0 writes artifacts, state files and logs (cplitool.toolchain.runtime.is_main_process).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe.sections import RunSection
from cplitool.toolchain.runtime import select_device

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_world_size() -> int:
    """Number of processes torchrun started (1 when run directly)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UsageError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}: expected an integer (as torchrun sets it)"
        ) from None


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def distributed_session(run: RunSection) -> Iterator[int]:
    """Initialise torch.distributed from torchrun's environment for the enclosed work; yields the world size.

    A single process (no torchrun) gets no process group, so the same command works either way.
    """
    world = launched_world_size()
    if world <= 1 or torch.distributed.is_initialized():
        yield world
        return
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise UsageError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun")
    device = select_device(run)
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend)
    try:
        if torch.distributed.get_rank() == 0:
            console.print(f"distributed: {world} processes, {backend} backend")
        yield world
    finally:
        torch.distributed.destroy_process_group()
