"""Every phase of a prune shows progress: after capture + Gram, each stage's importance, gamma search and
selection + refit, and each group's selection and every consumer's refit, are steps of a bar that completes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune import block_inputs, group_pruner, pruner
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.group_checks import batches, prune_all
from tests.toolchain.prune.nets import randomised


def recorder(module: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace `module.task` by one that records each bar: its descriptions, total and completed steps."""
    bars: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def task(description: str, total: float | None, unit: str = "it", transient: bool = True) -> Iterator[Any]:
        bar = {"descriptions": [description], "total": total, "done": 0.0}
        bars.append(bar)

        def advance(steps: float = 1, description: str | None = None) -> None:
            bar["done"] += steps
            if description:
                bar["descriptions"].append(description)

        yield advance

    monkeypatch.setattr(module, "task", task)
    return bars


def test_each_group_shows_its_selection_and_every_refit(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = recorder(group_pruner, monkeypatch)
    shape = (3, 8, 8)
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    p = prune_all(randomised("residual"), shape, cfg, batches(shape))
    solved = [r for r in p.reports if r.criterion == "lasso" and r.kept < r.channels]
    selects = [b for b in bars if b["descriptions"][0].startswith("select ")]
    assert solved and len(selects) == len(solved)
    for report, bar in zip(solved, selects, strict=True):
        assert bar["descriptions"][0] == f"select {report.root}"
        assert bar["descriptions"][1:] == [f"refit {c.name}" for c in report.consumers]
        assert bar["total"] == bar["done"] == 1 + len(report.consumers)


@pytest.mark.parametrize("gamma_search", [[], [0.0, 1.0]])
def test_each_stage_shows_importance_gamma_search_and_selection(
    gamma_search: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = recorder(pruner, monkeypatch)
    torch.manual_seed(0)
    model = create_model("quick_vgg", 10).eval()
    shape = (1, 8, 8)
    cfg = PruneSection(method="cpli", macs_keep=0.5, num_images=72, positions=5, round_to=1, gamma_search=gamma_search)
    plan = make_plan(model, shape, cfg)
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(24, *shape, generator=g), torch.randint(0, 10, (24,), generator=g)) for _ in range(3)]
    prune_model(model, plan, cfg, loader, torch.device("cpu"), seed=0)
    solves = [b for b in bars if b["descriptions"][0].startswith("solve ")]
    assert [b["descriptions"][0] for b in solves] == [f"solve {s.consumer}" for s in plan.stages]
    for stage, bar in zip(plan.stages, solves, strict=True):
        steps = ["importance", *(["gamma search"] if gamma_search else []), "select + refit"]
        assert bar["descriptions"][1:] == [f"{step} {stage.consumer}" for step in steps]
        assert bar["total"] == bar["done"] == len(steps)


def test_kept_block_activations_show_their_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking and advancing the kept block activations are passes over the sampled batches: each is a bar that
    completes, one step a batch."""
    bars = recorder(block_inputs, monkeypatch)
    shape = (3, 8, 8)
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    data = batches(shape)
    prune_all(randomised("depthwise_chain"), shape, cfg, data)
    takes = [b for b in bars if b["descriptions"][0].startswith("inputs of ")]
    advances = [b for b in bars if b["descriptions"][0].startswith("advance to ")]
    assert takes and advances
    assert all(b["total"] == b["done"] == len(data) for b in takes + advances)
