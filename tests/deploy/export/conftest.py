"""One torch thread in these tests: the CI and development machines share few cores, and torch's spinning
intra-op threads stall under oversubscription (a 3x slowdown measured here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
