from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cplitool.deploy.runners.torch_runner import TorchRunner
from cplitool.toolchain.errors import MissingDependencyError, UsageError
from cplitool.toolchain.models import create_model
from tests.deploy.pruned_run import make_run

X = np.random.default_rng(0).standard_normal((4, 1, 8, 8), dtype=np.float32)


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("quick_vgg", 10).eval()


def test_cpu_runner_matches_the_model() -> None:
    m = model()
    with torch.no_grad():
        expected = m(torch.from_numpy(X)).numpy()
    with TorchRunner(m, threads=1) as r:
        assert np.allclose(r.infer(X), expected, atol=1e-6)
        assert not r.times_device


def test_runner_loads_a_cplitool_artifact(in_tmp: Path) -> None:
    _, run = make_run(in_tmp)
    with TorchRunner(run.file("pruned.pt")) as r:
        assert r.infer(X).shape == (4, 10)
        assert r.model.features[0].out_channels == 16  # the pruned width, rebuilt from the artifact


def test_cpu_accepts_only_fp32_eager() -> None:
    with pytest.raises(UsageError, match="need a CUDA device"):
        TorchRunner(model(), "cpu", "fp16")
    with pytest.raises(UsageError, match="need a CUDA device"):
        TorchRunner(model(), "cpu", cuda_graphs=True)
    with pytest.raises(UsageError, match="precision"):
        TorchRunner(model(), "cuda", "int4")


def test_cuda_missing_is_a_clear_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check = TorchRunner.availability("cuda")
    assert not check.ok and "torch sees no CUDA device" in check.reason
    with pytest.raises(MissingDependencyError, match="no CUDA device"):
        TorchRunner(model(), "cuda").activate()


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    ("precision", "graphs", "atol"), [("fp32", False, 1e-3), ("fp32", True, 1e-3), ("fp16", True, 5e-2)]
)
def test_cuda_runner_matches_cpu_and_times_transfers_apart(precision: str, graphs: bool, atol: float) -> None:
    m = model()
    with torch.no_grad():
        expected = m(torch.from_numpy(X)).numpy()
    with TorchRunner(m, "cuda", precision, graphs) as r:
        out, times = r.infer_timed(X)
        out2, _ = r.infer_timed(X + 0)  # graph replay with the same shape reuses the captured graph
    assert np.allclose(out, expected, atol=atol) and np.allclose(out2, out)
    assert times.compute_ms > 0 and times.h2d_ms > 0 and times.d2h_ms > 0 and times.enqueue_ms > 0
