"""Chains advance kept activations one segment per stage; that must prune exactly like re-running the prefix."""

from __future__ import annotations

import copy

import pytest
import torch

import cplitool.toolchain.prune.chain as chain_mod
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.chain import ChainInputs
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection


def batches(shape: tuple[int, ...], count: int = 3, size: int = 24) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(size, *shape, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(count)]


@pytest.mark.parametrize("method", ["cpli", "cp"])
def test_chain_path_equals_prefix_path(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = create_model("quick_vgg", 10).eval()
    shape = (1, 8, 8)
    cfg = PruneSection(method=method, macs_keep=0.5, num_images=72, positions=5, round_to=1)
    plan = make_plan(model, shape, cfg)
    loader = batches(shape)
    assert ChainInputs.create(model, plan.stages, shape, loader, cfg.num_images, torch.device("cpu")) is not None
    fast = prune_model(copy.deepcopy(model), copy.deepcopy(plan), cfg, loader, torch.device("cpu"), seed=0)
    monkeypatch.setattr(chain_mod, "CACHE_BYTES", 0)  # over the memory bound: the prefix path
    assert ChainInputs.create(model, plan.stages, shape, loader, cfg.num_images, torch.device("cpu")) is None
    slow = prune_model(copy.deepcopy(model), copy.deepcopy(plan), cfg, loader, torch.device("cpu"), seed=0)
    for a, b in zip(fast.stages, slow.stages, strict=True):
        assert a.kept_channels == b.kept_channels
        assert a.err_before == pytest.approx(b.err_before, rel=1e-4)
        assert a.err_after == pytest.approx(b.err_after, rel=1e-4)
    for (name, p), (_, q) in zip(fast.model.state_dict().items(), slow.model.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_residual_networks_use_the_prefix_path() -> None:
    model = create_model("resnet20", 10).eval()
    plan = make_plan(model, (3, 32, 32), PruneSection())
    assert ChainInputs.create(model, plan.stages, (3, 32, 32), [], 10, torch.device("cpu")) is None
