"""The fake GPU fixture shared by the runner, engine-building and bench tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import cplitool.deploy.runners.cuda.pycuda_io as pycuda_io
from cplitool.deploy.runners.cuda.pycuda_io import SharedContext
from tests.deploy.gpu_fakes import FakeGPU, install_cudart, install_pycuda


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGPU]:
    """A fake GPU with pycuda and cuda-python installed; torch sees no CUDA device."""
    import torch

    fake = FakeGPU()
    install_pycuda(monkeypatch, fake)
    install_cudart(monkeypatch, fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(pycuda_io, "SHARED", SharedContext())
    yield fake
