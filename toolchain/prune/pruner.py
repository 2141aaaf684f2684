"""The layer-by-layer loop shared by every method: same stages, same widths, same surgery.

cpli/cp: one pass of the original network captures sampled outputs (and loss gradients for cpli);
then, shallow to deep, each stage streams the network-pruned-so-far's input patches into Gram sums
(chains advance kept activations one segment per stage, see chain.py; other graphs re-run the prefix),
selects channels by the (augmented) LASSO, removes them and refits the consumer's weights.
l1/random: the same stages and widths, channels chosen without data, weights left as they are.
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.progress import console, task
from cplitool.toolchain.prune import lasso
from cplitool.toolchain.prune.chain import ChainInputs
from cplitool.toolchain.prune.criteria import l1_keep, random_keep
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.gamma_search import choose_gamma, held_images
from cplitool.toolchain.prune.group_pruner import GroupReport, choose_groups, remove_groups
from cplitool.toolchain.prune.plan import PrunePlan, Stage, make_plan
from cplitool.toolchain.prune.sampling import GramSums, capture_original, prefix_inputs, stage_grams, weight_2d
from cplitool.toolchain.prune.solver import select, solve_stage
from cplitool.toolchain.prune.surgery import remove_channels, set_weight
from cplitool.toolchain.recipe.sections import PruneSection

Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class StageReport:
    producer: str
    consumer: str
    channels: int
    kept: int
    err_before: float | None = None  # relative reconstruction error, kept channels with original weights
    err_after: float | None = None  # after the least-squares refit
    ridge: float | None = None  # the refit's relative ridge toward the original weights; None: not refitted
    kept_channels: list[int] = field(default_factory=list)  # indices into the producer's original outputs
    rows: int = 0  # sampled output positions
    capture_s: float = 0.0
    gram_s: float = 0.0
    solve_s: float = 0.0
    refit_s: float = 0.0  # part of solve_s
    lasso_s: float = 0.0  # part of solve_s: the LASSO selections (look-ahead's included)
    gamma_rel: float | None = None  # with prune.gamma_search: the value chosen for this stage
    gamma_losses: dict[str, float] = field(default_factory=dict)  # ... and each candidate's held-out loss


@dataclass
class PruneResult:
    model: nn.Module
    stages: list[StageReport]
    capture_s: float  # forward/backward of the sampling passes
    gram_s: float  # Gram sums
    solve_s: float  # look-ahead, LASSO, refit and surgery
    groups: list[GroupReport] = field(default_factory=list)  # scope "all"
    refit_s: float = 0.0  # the refits' share of solve_s (their ridge search included)
    lasso_s: float = 0.0  # the LASSO selections' share of solve_s
    load_s: float = 0.0  # loading the LASSO's compiled loops, once per process before the first selection
    peak_memory_mib: dict[str, float] = field(default_factory=dict)  # see peak_memory

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stages": [asdict(s) for s in self.stages],
            "seconds": {
                "capture": self.capture_s,
                "gram": self.gram_s,
                "solve": self.solve_s,
                "lasso": self.lasso_s,
                "refit": self.refit_s,
                "load": self.load_s,
            },
            "peak_memory_mib": self.peak_memory_mib,
        }
        if self.groups:
            d["groups"] = [asdict(g) for g in self.groups]
            d["data_free_groups"] = [
                {"group": g.root, "criterion": g.criterion, "why": g.why} for g in self.groups if g.why
            ]
        return d


@dataclass(frozen=True)
class Terms:
    """Which parts of the CPLI objective a method uses."""

    sampled: bool
    classification: bool
    importance: bool

    @classmethod
    def of(cls, cfg: PruneSection) -> Terms:
        cpli = cfg.method == "cpli"
        return cls(
            cfg.method in ("cpli", "cp"),
            cpli and cfg.use_classification and cfg.gamma_rel > 0,
            cpli and cfg.use_importance,
        )


def importance(
    model: nn.Module, stage: Stage, nxt: Stage | None, lookahead: dict[str, GramSums], cfg: PruneSection, terms: Terms
) -> torch.Tensor:
    """s over the consumer's outputs: 1 where the next stage (selected ahead on the original network, s = 1)
    keeps a channel, eps where it drops it."""
    consumer: Any = model.get_submodule(stage.consumer)
    n = consumer.weight.shape[0]
    s = torch.ones(n, dtype=torch.float64)
    if not terms.importance or nxt is None:
        return s
    nxt_conv = model.get_submodule(nxt.consumer)
    W = weight_2d(nxt_conv)
    kept = select(lookahead[nxt.consumer], W, n, torch.ones(W.shape[0]), cfg.gamma_rel * terms.classification, nxt.keep)
    s.fill_(cfg.eps)
    s[torch.as_tensor(kept)] = 1.0
    return s


def norm_after(dg: Any, conv: nn.Module) -> nn.Module | None:
    """The BatchNorm that takes `conv`'s output directly (its only consumer), from the dependency graph."""
    outputs = dg.module2node[conv].outputs
    if len(outputs) == 1 and isinstance(outputs[0].module, nn.modules.batchnorm._BatchNorm):
        return outputs[0].module
    return None


def fold_norm(s: torch.Tensor, bn: nn.Module | None) -> torch.Tensor:
    """s_j times the BatchNorm's squared scale (gamma_j / sigma_j)^2: the error measured where the network
    sees it (prune.fold_bn, at every stage, block outputs included)."""
    if bn is None:
        return s
    b: Any = bn
    scale = b.weight.detach().double().cpu() / (b.running_var.detach().double().cpu() + b.eps).sqrt()
    return s * scale**2


def peak_memory(device: torch.device) -> dict[str, float]:
    """MiB: the process's peak resident memory so far (what a prune needs of the host, the model and data
    included: the kernel keeps no per-phase peak) and, on CUDA, the peak allocated since the prune began."""
    peak = {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if device.type == "cuda":
        peak["cuda_allocated"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


def prune_model(
    model: nn.Module, plan: PrunePlan, cfg: PruneSection, loader: Loader, device: torch.device, seed: int
) -> PruneResult:
    """Prune `model` in place per `plan` (stages shallow to deep) and return it with a per-stage report."""
    model.eval().to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    terms = Terms.of(cfg)
    load_s = lasso.load() if terms.sampled else 0.0
    prune = _prune_groups if plan.scope == "all" else _prune_stages
    result = prune(model, plan, cfg, loader, device, seed, terms)
    result.peak_memory_mib, result.load_s = peak_memory(device), load_s
    return result


def _prune_stages(
    model: nn.Module, plan: PrunePlan, cfg: PruneSection, loader: Loader, device: torch.device, seed: int, terms: Terms
) -> PruneResult:
    """scope "blocks": stages shallow to deep, each pruned for real before the next is sampled."""
    dg = graph(model, plan.input_shape)
    by_producer = {s.producer: s for s in plan.stages}
    capture, chain = None, None
    if terms.sampled:
        ahead = {by_producer[s.consumer].consumer for s in plan.stages if s.consumer in by_producer}
        capture = capture_original(
            copy.deepcopy(model),
            plan.stages,
            loader,
            positions=cfg.positions,
            seed=seed,
            grads=terms.classification,
            lookahead=ahead if terms.importance else set(),
            device=device,
            lookahead_fraction=cfg.lookahead_rows_fraction,
            per_image=cfg.classification_rows == "image",
        )
        start = time.perf_counter()
        chain = ChainInputs.create(model, plan.stages, plan.input_shape, loader, cfg.num_images, device)
        capture.seconds += time.perf_counter() - start
    gen = torch.Generator().manual_seed(seed)
    searching = bool(cfg.gamma_search) and terms.classification
    held = held_images(loader) if searching else None
    reports = []
    with task("prune stages", len(plan.stages), "stage", transient=False) as advance:
        for i, stage in enumerate(plan.stages):
            advance(0, description=f"prune stages ({stage.consumer})")
            producer, consumer = model.get_submodule(stage.producer), model.get_submodule(stage.consumer)
            report = StageReport(stage.producer, stage.consumer, stage.channels, stage.keep)
            if capture is None:
                start = time.perf_counter()
                kept = (
                    l1_keep(producer, stage.keep)
                    if cfg.method == "l1"
                    else random_keep(stage.channels, stage.keep, gen)
                )
                remove_channels(dg, producer, kept)
                report.kept_channels = kept.tolist()
                report.solve_s = time.perf_counter() - start
            else:
                targets = capture.targets.pop(stage.consumer)
                inputs = chain.inputs(stage) if chain else prefix_inputs(model, stage.consumer, loader, device)
                grams, report.capture_s = stage_grams(
                    model,
                    stage.consumer,
                    inputs,
                    targets,
                    terms.classification,
                    device,
                    per_image=cfg.classification_rows == "image",
                    store=cfg.refit_classification,
                    held=cfg.ridge_search or searching,
                    held_classification=searching,
                )
                report.gram_s = grams.seconds
                report.rows = grams.rows
                start, lasso_at = time.perf_counter(), lasso.CLOCK.seconds
                with task(f"solve {stage.consumer}", 2 + (held is not None), "step") as step:
                    step(0, description=f"importance {stage.consumer}")
                    nxt = by_producer.get(stage.consumer)
                    s = importance(model, stage, nxt, capture.lookahead, cfg, terms)
                    if cfg.fold_bn and cfg.method == "cpli":
                        s = fold_norm(s, norm_after(dg, consumer))
                    capture.lookahead.pop(nxt.consumer if nxt else "", None)  # used once: free its Gram sums
                    step()
                    gamma_rel = cfg.gamma_rel * terms.classification
                    if held is not None:
                        step(0, description=f"gamma search {stage.consumer}")
                        gamma_rel, losses = choose_gamma(
                            model, stage, grams, s, cfg.gamma_search, cfg.ridge, held, device
                        )
                        report.gamma_rel, report.gamma_losses = gamma_rel, {str(g): v for g, v in losses.items()}
                        if not cfg.ridge_search:
                            grams.held = None  # kept for the gamma search only: the refit stays the plain fit
                        step()
                    step(0, description=f"select + refit {stage.consumer}")
                    solution = solve_stage(
                        grams,
                        weight_2d(consumer),
                        stage.channels,
                        s,
                        gamma_rel,
                        stage.keep,
                        cfg.ridge,
                        cfg.refit_classification,
                    )
                    step()
                remove_channels(dg, producer, solution.keep)
                report.kept_channels = solution.keep.tolist()
                set_weight(consumer, solution.weight)
                report.err_before, report.err_after = solution.err_before, solution.err_after
                report.ridge = solution.ridge
                report.refit_s = solution.refit_seconds
                report.lasso_s = lasso.CLOCK.seconds - lasso_at
                report.solve_s = time.perf_counter() - start
                del grams
            reports.append(report)
            console.print(
                f"stage {i + 1}/{len(plan.stages)} {stage.producer} -> {stage.consumer}: {stage.channels} -> {stage.keep}"
                + (
                    f"  error {report.err_before:.4f} -> {report.err_after:.4f}"
                    if report.err_before is not None and report.err_after is not None
                    else ""
                ),
                highlight=False,
            )
            advance()
    return PruneResult(
        model,
        reports,
        (capture.seconds if capture else 0.0) + sum(r.capture_s for r in reports),
        (capture.gram_seconds if capture else 0.0) + sum(r.gram_s for r in reports),
        sum(r.solve_s for r in reports),
        refit_s=sum(r.refit_s for r in reports),
        lasso_s=sum(r.lasso_s for r in reports),
    )


def _prune_groups(
    model: nn.Module, plan: PrunePlan, cfg: PruneSection, loader: Loader, device: torch.device, seed: int, terms: Terms
) -> PruneResult:
    """scope "all": choose every coupled group's channels on the masked model, then remove them."""
    reports, capture_s = choose_groups(model, plan, cfg, loader, device, seed, terms.classification)
    start = time.perf_counter()
    remove_groups(model, plan, reports)
    surgery_s = time.perf_counter() - start
    return PruneResult(
        model,
        [],
        capture_s + sum(r.capture_s for r in reports),
        sum(r.gram_s for r in reports),
        sum(r.solve_s for r in reports) + surgery_s,
        reports,
        refit_s=sum(r.refit_s for r in reports),
        lasso_s=sum(r.lasso_s for r in reports),
    )


def prune(
    model: nn.Module,
    input_shape: tuple[int, ...],
    cfg: PruneSection,
    loader: Loader = (),
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> tuple[PrunePlan, PruneResult]:
    """Script entry point: plan and prune any nn.Module in place, e.g.
    `plan, result = prune(model, (3, 32, 32), PruneSection(method="cpli", scope="all"), train_loader)`.
    `loader` yields (images, labels) batches (only cpli/cp read it; labels feed the classification term)."""
    plan = make_plan(model, input_shape, cfg)
    return plan, prune_model(model, plan, cfg, loader, torch.device(device), seed)
