"""The scope = "blocks" reference: cpli/l1 on resnet20 and quick_vgg with seeded synthetic data.

`python -m tests.toolchain.prune.blocks_reference` wrote fixtures/blocks_reference.json from the code
before coupled groups existed (commit bbc5fa0); test_blocks_reference.py checks the code still gives it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.nets import randomise_bn

FIXTURE = Path(__file__).parent / "fixtures" / "blocks_reference.json"
CASES = [("resnet20", (3, 32, 32), "cpli"), ("quick_vgg", (1, 8, 8), "cpli"), ("quick_vgg", (1, 8, 8), "l1")]


def reference_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, 10)
    return randomise_bn(model)


def synthetic_batches(shape: tuple[int, ...], n: int = 3, batch: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(batch, *shape, generator=gen), torch.randint(0, 10, (batch,), generator=gen)) for _ in range(n)
    ]


def run_case(name: str, shape: tuple[int, ...], method: str, **extra: Any) -> dict[str, Any]:
    model = reference_model(name)
    cfg = PruneSection(method=method, macs_keep=0.5, num_images=120, batch_size=40, **extra)
    plan = make_plan(model, shape, cfg)
    result = prune_model(model, plan, cfg, synthetic_batches(shape), torch.device("cpu"), seed=0)
    weights = {n: p.detach().double() for n, p in result.model.named_parameters() if n.endswith("weight")}
    return {
        "keep": [s.keep for s in plan.stages],
        "kept": [s.kept_channels for s in result.stages],
        "weight_sums": {n: float(w.sum()) for n, w in weights.items()},
        "weight_sq": {n: float((w * w).sum()) for n, w in weights.items()},
    }


def compute() -> dict[str, Any]:
    return {f"{n}/{m}": run_case(n, s, m, ridge_search=False) for n, s, m in CASES}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(compute(), indent=1))
