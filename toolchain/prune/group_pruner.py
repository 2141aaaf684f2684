"""The loop for prune.scope = "all": coupled groups, shallow to deep, then one real surgery.

Each group's channels are chosen once for all its members. cpli/cp: one LASSO over the sum of every dense
consumer's reconstruction (and classification) objective, each normalised by its own output energy, then a
least-squares refit of every consumer. Groups with no dense consumer (only grouped convs read them) and the
l1/random methods use a data-free criterion named in the report. While groups are being chosen the model
keeps its shape: removed channels are masked by zeroing the consumers' weights on them, which computes
exactly what the pruned network computes (every member is channel-wise: find_groups refuses the rest).
The surgery at the end removes the masked channels through Torch-Pruning's dependency graph.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cplitool.toolchain.progress import Advance, console, task
from cplitool.toolchain.prune.block_inputs import BlockInputs
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.groups import Group, Member
from cplitool.toolchain.prune.lasso import CLOCK
from cplitool.toolchain.prune.plan import PrunePlan, Stage
from cplitool.toolchain.prune.sampling import Capture, GramSums, capture_original, group_grams, in_width, weight_2d
from cplitool.toolchain.prune.solver import ConsumerTerm, refit, select_group
from cplitool.toolchain.recipe.sections import PruneSection

Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]
L1_PRODUCERS = "l1-producers"  # data-free: sum over producers of filter L1 norms, each producer's divided by its mean
MAX_GRAM_COLUMNS = 8192  # a consumer reading more values per output row is not reconstructed (Gram > 512 MiB)


@dataclass
class ConsumerReport:
    name: str
    err_before: float  # relative reconstruction error of the consumer's output, kept channels, weights as before
    err_after: float  # after the least-squares refit
    ridge: float | None = None  # the refit's relative ridge toward the original weights; None: not refitted


@dataclass
class GroupReport:
    root: str
    channels: int
    kept: int
    criterion: str  # "lasso", L1_PRODUCERS or "random"
    why: str = ""  # why a data-free criterion was used where the method reconstructs
    producers: list[str] = field(default_factory=list)
    consumers: list[ConsumerReport] = field(default_factory=list)
    kept_channels: list[int] = field(default_factory=list)  # root channels kept
    rows: int = 0
    capture_s: float = 0.0
    gram_s: float = 0.0
    solve_s: float = 0.0
    refit_s: float = 0.0  # part of solve_s
    lasso_s: float = 0.0  # part of solve_s: the group's LASSO selection


def processing_order(model: nn.Module, groups: list[Group]) -> list[Group]:
    """Shallow to deep by each group's deepest reader, so a group's consumers see every earlier group pruned."""
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(groups, key=lambda g: max(order[m.name] for m in g.members if m.side == "in"))


def producer_l1(model: nn.Module, group: Group) -> np.ndarray:
    """Per root channel: the sum over the group's producers of the filter's L1 norm over its producer's mean."""
    score = np.zeros(group.channels)
    for m in group.producers:
        w = weight_2d(model.get_submodule(m.name)).abs().sum(1).double().cpu().numpy()
        score[m.roots] += w[m.idxs] / max(float(w.mean()), 1e-30)
    return score


def unreconstructable(model: nn.Module, group: Group) -> str:
    """Why the group's channels cannot be chosen by reconstruction ('' when they can)."""
    if not group.reconstructable:
        return "no dense layer reads the group (only grouped convs do): nothing to reconstruct"
    for m in group.consumers:
        cols = weight_2d(model.get_submodule(m.name)).shape[1]
        if cols > MAX_GRAM_COLUMNS:
            gib = cols**2 * 8 / 2**30
            return (
                f"{m.name} reads {cols} values per output row: its Gram matrix ({gib:.1f} GiB in float64) is "
                f"over the {MAX_GRAM_COLUMNS}-column limit"
            )
    return ""


def data_free_classes(model: nn.Module, group: Group, criterion: str, gen: torch.Generator) -> np.ndarray:
    """Tie classes kept by the l1-producers or random criterion (a class scores the sum of its channels)."""
    n = len(group.ties)
    keep = group.keep // group.tie_size()
    if criterion == "random":
        return np.sort(torch.randperm(n, generator=gen)[:keep].numpy())
    score = producer_l1(model, group)
    per_class = np.array([score[t].sum() for t in group.ties])
    return np.sort(np.argsort(-per_class, kind="stable")[:keep])


def _class_of(group: Group) -> np.ndarray:
    classes = np.empty(group.channels, dtype=np.int64)
    for ci, t in enumerate(group.ties):
        classes[t] = ci
    return classes


def mask_inputs(layer: Any, member: Member, drop_roots: set[int]) -> list[int]:
    """Zero the layer's weights on the input channels carrying dropped roots; returns those channels."""
    dropped = [i for i, r in zip(member.idxs, member.roots, strict=True) if r in drop_roots]
    w = layer.weight
    with torch.no_grad():
        if member.per_group:  # grouped conv: channel i lives at column i % per of its conv group's rows
            out_per = w.shape[0] // member.groups
            for i in dropped:
                block = i // member.per_group
                w[block * out_per : (block + 1) * out_per, i % member.per_group] = 0
        else:
            w[:, dropped] = 0
    return dropped


class GroupPruner:
    """State of the masked loop: which input channels of each layer are gone so far."""

    def __init__(
        self,
        model: nn.Module,
        cfg: PruneSection,
        device: torch.device,
        capture: Capture | None,
        inputs: BlockInputs | None = None,
    ) -> None:
        self.model, self.cfg, self.device, self.capture, self.inputs = model, cfg, device, capture, inputs
        self.gone: dict[str, set[int]] = {}

    def terms(self, group: Group, grams: dict[str, GramSums]) -> list[ConsumerTerm]:
        out = []
        for m in group.consumers:
            layer: Any = self.model.get_submodule(m.name)
            W = weight_2d(layer)
            c = in_width(layer)
            s = torch.ones(W.shape[0], dtype=torch.float64)
            out.append(ConsumerTerm(grams[m.name], W, c, np.asarray(m.idxs), np.asarray(m.roots), s))
        return out

    def reconstruct(self, group: Group, report: GroupReport, loader: Loader, gamma_rel: float) -> np.ndarray:
        assert self.capture is not None
        names = [m.name for m in group.consumers]
        targets = {n: self.capture.targets[n] for n in names}
        forward, ready_s = self.inputs.forward(names) if self.inputs else (None, 0.0)
        grams, report.capture_s = group_grams(
            self.model, targets, loader, gamma_rel > 0, self.device, held=self.cfg.ridge_search, forward=forward
        )
        report.capture_s += ready_s
        report.gram_s = sum(g.seconds for g in grams.values())
        report.rows = sum(g.rows for g in grams.values())
        start, lasso_at = time.perf_counter(), CLOCK.seconds
        with task(f"select {group.root}", 1 + len(group.consumers), "step") as step:
            classes = select_group(
                self.terms(group, grams), _class_of(group), len(group.ties), gamma_rel, group.keep // group.tie_size()
            )
            report.lasso_s = CLOCK.seconds - lasso_at
            step()
            kept_roots = group.roots_of(classes)
            self.mask(group, kept_roots)
            self.refit_consumers(group, grams, report, start, step)
        report.solve_s = time.perf_counter() - start
        return kept_roots

    def refit_consumers(
        self, group: Group, grams: dict[str, GramSums], report: GroupReport, start: float, step: Advance
    ) -> None:
        """Least-squares weights of every consumer on its channels left alive, one progress step each."""
        for m in group.consumers:
            step(0, description=f"refit {m.name}")
            layer: Any = self.model.get_submodule(m.name)
            c = in_width(layer)
            alive = np.array(sorted(set(range(c)) - self.gone[m.name]), dtype=np.int64)
            W = weight_2d(layer)
            solution = refit(grams[m.name], W, c, alive, self.cfg.ridge, start)
            k = W.shape[1] // c
            cols = torch.as_tensor((alive[:, None] * k + np.arange(k)[None, :]).reshape(-1), device=W.device)
            full = torch.zeros_like(W)
            full[:, cols] = solution.weight
            with torch.no_grad():
                layer.weight.copy_(full.reshape(layer.weight.shape))
            report.consumers.append(ConsumerReport(m.name, solution.err_before, solution.err_after, solution.ridge))
            report.refit_s += solution.refit_seconds
            step()

    def mask(self, group: Group, kept_roots: np.ndarray) -> None:
        drop = set(range(group.channels)) - {int(r) for r in kept_roots}
        readers = [m for m in group.members if m.side == "in"]
        for m in readers:
            dropped = mask_inputs(self.model.get_submodule(m.name), m, drop)
            self.gone.setdefault(m.name, set()).update(dropped)
        if self.inputs is not None:
            self.inputs.changed(m.name for m in readers)  # masked now, consumers refitted next


def choose_groups(
    model: nn.Module,
    plan: PrunePlan,
    cfg: PruneSection,
    loader: Loader,
    device: torch.device,
    seed: int,
    classification: bool,
) -> tuple[list[GroupReport], float]:
    """Choose every group's channels, masking them in `model` (which keeps its shape) and refitting consumers.
    Returns the reports and the seconds of the original network's capture pass."""
    model.eval().to(device)
    sampled = cfg.method in ("cpli", "cp")
    order = processing_order(model, plan.groups)
    why = {g.root: unreconstructable(model, g) for g in order} if sampled else {}
    capture = None
    if sampled and not all(why.values()):
        consumers = sorted({m.name for g in order if not why[g.root] for m in g.consumers})
        capture = capture_original(
            copy.deepcopy(model),
            [Stage("", n, 0) for n in consumers],
            loader,
            positions=cfg.positions,
            seed=seed,
            grads=classification,
            lookahead=set(),
            device=device,
        )
    inputs = BlockInputs(model, loader, plan.input_shape, device) if capture is not None else None
    pruner = GroupPruner(model, cfg, device, capture, inputs)
    gen = torch.Generator().manual_seed(seed)
    reports = []
    with task("prune groups", len(order), "group", transient=False) as advance:
        for i, group in enumerate(order):
            advance(0, description=f"prune groups ({group.root})")
            report = GroupReport(
                group.root, group.channels, group.keep, "lasso", producers=[m.name for m in group.producers]
            )
            if group.keep >= group.channels:
                kept = np.arange(group.channels)
                report.criterion = "none (kept whole)"
            elif sampled and not why[group.root]:
                kept = pruner.reconstruct(group, report, loader, cfg.gamma_rel * classification)
            else:
                start = time.perf_counter()
                report.criterion = "random" if cfg.method == "random" else L1_PRODUCERS
                report.why = why.get(group.root, "")
                kept = group.roots_of(data_free_classes(model, group, report.criterion, gen))
                pruner.mask(group, kept)
                report.solve_s = time.perf_counter() - start
            report.kept_channels = kept.tolist()
            reports.append(report)
            errs = "  ".join(f"{c.name} {c.err_before:.4f} -> {c.err_after:.4f}" for c in report.consumers)
            console.print(
                f"group {i + 1}/{len(order)} {group.root}: {group.channels} -> {group.keep} ({report.criterion}) {errs}",
                highlight=False,
                markup=False,
            )
            advance()
    return reports, (capture.seconds + capture.gram_seconds if capture else 0.0)


def remove_groups(model: nn.Module, plan: PrunePlan, reports: list[GroupReport]) -> None:
    """Real channel removal of every group's dropped channels (the masked model's weights carry over)."""
    dg = graph(model, plan.input_shape)
    for r in reports:
        drop = sorted(set(range(r.channels)) - set(r.kept_channels))
        if drop:
            root: Any = model.get_submodule(r.root)
            pruner = dg.get_pruner_of_module(root)
            dg.get_pruning_group(root, pruner.prune_out_channels, idxs=drop).prune()
