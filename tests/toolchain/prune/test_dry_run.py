"""The structural dry run of a scope "all" plan: a block whose code fixes a width is named with the prune.skip
list that lets the rest prune; the group search is bounded."""

from __future__ import annotations

import ast
import re

import pytest
import torch
from torch import nn

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune import groups as groups_mod
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.groups import find_groups
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.nets import randomised

SHAPE = (3, 8, 8)


class FixedSplit(nn.Module):
    """Splits its input by widths stored at construction, as timm's MixedConv2d does."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = sizes
        self.convs = nn.ModuleList(nn.Conv2d(s, 8, 3, padding=1) for s in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([c(p) for c, p in zip(self.convs, torch.split(x, self.sizes, 1), strict=True)], 1)


class WithFixedSplit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.mixed = FixedSplit([16, 16])
        self.head = nn.Sequential(nn.Conv2d(16, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        self.tail = nn.Conv2d(64, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.mixed(self.stem(x)))
        return self.fc(torch.relu(self.tail(x)).mean((2, 3)))


def test_a_block_with_a_fixed_width_is_named_with_the_skip_that_lets_the_rest_prune() -> None:
    """Catches the dry run being skipped (the pruned model would fail its first forward, as MixNet did)."""
    torch.manual_seed(0)
    model = WithFixedSplit().eval()
    cfg = PruneSection(scope="all", method="l1", macs_keep=0.6, round_to=4)
    with pytest.raises(UsageError, match=r"^prune.scope = 'all': mixed \(FixedSplit: RuntimeError: split") as e:
        make_plan(model, SHAPE, cfg)
    message = str(e.value)
    assert "\n" not in message
    found = re.search(r"prune\.skip = (\[.*?\])", message)
    assert found is not None
    skip = ast.literal_eval(found.group(1))
    assert "stem.0" in skip  # the group the split reads; every group touching the block is left whole
    plan = make_plan(model, SHAPE, PruneSection(scope="all", method="l1", macs_keep=0.6, round_to=4, skip=skip))
    assert plan.groups and all(g.root != "stem.0" for g in plan.groups)


def test_a_group_search_that_does_not_settle_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the bound on Torch-Pruning's group search being lost (ReXNet searched for minutes)."""
    model = randomised("residual")
    monkeypatch.setattr(groups_mod, "ITEMS_PER_NODE", 0)
    found = find_groups(model, graph(model, SHAPE), 8)
    assert found and all("does not settle" in (g.refused or "") for g in found)


def test_the_group_search_has_a_time_budget_that_names_the_module() -> None:
    model = randomised("residual")
    with pytest.raises(UsageError, match=r"groups of Residual ran past 0 s \(at [\w.]+\); prune.scope = 'blocks'"):
        find_groups(model, graph(model, SHAPE), 8, budget_s=0.0)
