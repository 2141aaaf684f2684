"""A prune's report splits its solve phase: the seconds of the LASSO selections (lasso.CLOCK) are counted per
stage and per group, inside solve and apart from the refit, so a benchmark can say what the LASSO costs."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune import lasso
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.group_checks import batches, prune_all
from tests.toolchain.prune.nets import randomised

DELAY = 0.05  # seconds added to every LASSO selection


@pytest.fixture
def slow_lasso(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every selection takes DELAY longer; returns the running count of selections."""
    calls = [0]
    original = lasso._select_exact

    def slow(*args: Any) -> Any:
        calls[0] += 1
        time.sleep(DELAY)
        return original(*args)

    monkeypatch.setattr(lasso, "_select_exact", slow)
    return calls


def test_stage_reports_count_their_lasso_apart_from_refit(slow_lasso: list[int]) -> None:
    torch.manual_seed(0)
    model = create_model("quick_vgg", 10).eval()
    shape = (1, 8, 8)
    cfg = PruneSection(method="cpli", macs_keep=0.5, num_images=72, positions=5, round_to=1)
    plan = make_plan(model, shape, cfg)
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(24, *shape, generator=g), torch.randint(0, 10, (24,), generator=g)) for _ in range(3)]
    result = prune_model(model, plan, cfg, loader, torch.device("cpu"), seed=0)
    assert slow_lasso[0] >= len(result.stages) > 0
    for r in result.stages:
        assert DELAY <= r.lasso_s <= r.solve_s - r.refit_s
    assert result.to_dict()["seconds"]["lasso"] == pytest.approx(sum(r.lasso_s for r in result.stages))
    assert result.lasso_s >= slow_lasso[0] * DELAY


def test_group_reports_count_their_lasso_apart_from_refit(slow_lasso: list[int]) -> None:
    shape = (3, 8, 8)
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    p = prune_all(randomised("residual"), shape, cfg, batches(shape))
    solved = [r for r in p.reports if r.criterion == "lasso" and r.kept < r.channels]
    assert solved and slow_lasso[0] == len(solved)
    for r in solved:
        assert DELAY <= r.lasso_s <= r.solve_s - r.refit_s
