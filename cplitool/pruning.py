"""`cplitool.prune`: CPLI (or CP, L1, random) channel pruning of any nn.Module the recipe path would prune.

The same plan (make_plan) and pruner (prune_model) as `cplitool prune`; the recipe's [prune] keys are
keyword arguments here and are validated the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cplitool.inputs import sample_shape
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import Terms, prune_model
from cplitool.toolchain.prune.stage import layer_table
from cplitool.toolchain.recipe.sections import PruneSection
from cplitool.toolchain.recipe.validate import build_section

WHERE = "cplitool.prune"


@dataclass
class PruneReport:
    """What pruning did: MACs and parameters before/after, per-layer widths and reconstruction errors, time."""

    method: str
    input_shape: tuple[int, ...]
    target_macs_keep: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    layers: list[dict[str, Any]] = field(default_factory=list)  # as prune_report.json's "layers"
    seconds: dict[str, float] = field(default_factory=dict)  # capture, gram, solve (of which lasso, refit), load
    peak_memory_mib: dict[str, float] = field(default_factory=dict)  # process_rss (and cuda_allocated)

    @property
    def macs_keep(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "macs_keep": self.macs_keep}

    def __str__(self) -> str:
        return (
            f"{self.method}: MACs {self.macs_before / 1e6:,.2f} M -> {self.macs_after / 1e6:,.2f} M "
            f"({self.macs_keep:.1%}, target {self.target_macs_keep:.0%}), params {self.params_before / 1e6:,.3f} M "
            f"-> {self.params_after / 1e6:,.3f} M"
        )


def prune_config(method: str, macs_keep: float, options: dict[str, Any]) -> PruneSection:
    """A PruneSection from keyword arguments, validated like a recipe's [prune] table."""
    errors: list[str] = []
    cfg = build_section(
        "prune", {"method": method, "macs_keep": macs_keep, **options}, Path.cwd(), f"{WHERE}: ", errors
    )
    if errors:
        raise UsageError("; ".join(errors))
    assert isinstance(cfg, PruneSection)
    return cfg


def sampling_batches(loader: Iterable[Any] | None, cfg: PruneSection) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's first cfg.num_images (images, labels), kept in memory: the pruner reads them several times."""
    if not Terms.of(cfg).sampled:
        return []
    if loader is None:
        raise UsageError(
            f"{WHERE}: method {cfg.method!r} reconstructs each layer from data: pass a loader of (images, labels) "
            "batches from the training set (methods 'l1' and 'random' need none)"
        )
    batches, seen = [], 0
    for batch in loader:
        if not (isinstance(batch, Sequence) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor)):
            raise UsageError(f"{WHERE}: the loader must yield (images, labels) batches, got {type(batch).__name__}")
        x, y = batch[0], batch[1]
        take = min(len(x), cfg.num_images - seen)
        batches.append((x[:take], torch.as_tensor(y)[:take]))
        seen += take
        if seen >= cfg.num_images:
            break
    if not batches:
        raise UsageError(f"{WHERE}: the loader yielded no batches")
    return batches


def prune(
    model: nn.Module,
    loader: Iterable[Any] | None = None,
    *,
    macs_keep: float = 0.5,
    method: str = "cpli",
    example_input: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    device: str = "cpu",
    seed: int = 0,
    **options: Any,
) -> tuple[nn.Module, PruneReport]:
    """Prune a copy of `model` to `macs_keep` of its MACs (within 2%); returns the pruned module and its report.

    `loader` yields (images, labels) training batches (cpli and cp sample up to `num_images` of them);
    `example_input` is one batch of the model's input, or give `input_shape=(C, H, W)`; when neither is
    given, the loader's first batch sets the shape. Other keyword arguments are [prune] recipe keys
    (`round_to`, `skip`, `layer_keep`, `num_images`, `positions`, `gamma_rel`, ...). `model` is not modified.
    """
    cfg = prune_config(method, macs_keep, options)
    batches = sampling_batches(loader, cfg)
    if example_input is None and input_shape is None and batches:
        example_input = batches[0][0]
    shape = sample_shape(example_input, input_shape, WHERE)
    work = copy.deepcopy(model).cpu().eval()
    plan = make_plan(work, shape, cfg)  # unmeetable targets and unprunable models fail here, before sampling
    dense = count_model(work, shape)
    result = prune_model(work, plan, cfg, batches, torch.device(device), seed)
    pruned = result.model.cpu().eval()
    after = count_model(pruned, shape)
    report = PruneReport(
        method=cfg.method,
        input_shape=shape,
        target_macs_keep=cfg.macs_keep,
        macs_before=dense.macs,
        macs_after=after.macs,
        params_before=dense.params,
        params_after=after.params,
        layers=layer_table(plan, dense, after, result),
        seconds=result.to_dict()["seconds"],
        peak_memory_mib=result.peak_memory_mib,
    )
    return pruned, report
