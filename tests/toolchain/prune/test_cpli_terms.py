"""CPLI's two terms checked against independent references, so that a wrong term fails a test.

The references are built here from hooks and autograd on the ORIGINAL network, never through the capture
code under test. Each test names in its docstring the deliberate break it was seen to catch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cplitool.toolchain.prune.pruner as pruner_mod
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.plan import PrunePlan, make_plan
from cplitool.toolchain.prune.pruner import Terms, prune_model
from cplitool.toolchain.prune.sampling import GramSums, capture_original, gather_patches, gather_rows, weight_2d
from cplitool.toolchain.prune.solver import select, solve_stage
from cplitool.toolchain.recipe.sections import PruneSection

CPU = torch.device("cpu")
Batches = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small matrices: torch's spinning intra-op threads stall under the shared machine's oversubscription
    (100 CG operator applications: 59 s with 2 threads, 0.8 s with 1, measured under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def batches(shape: tuple[int, ...], count: int = 2, size: int = 16, seed: int = 0) -> Batches:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(count)]


def random_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorms far from identity, so the pre- and post-BN gradients differ."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g) * 2
            m.bias.data = torch.randn(n, generator=g) * 0.2
            m.running_mean = torch.randn(n, generator=g) * 0.2
            m.running_var = 0.3 + torch.rand(n, generator=g) * 3
    return model.eval()


def quick_vgg() -> nn.Module:
    torch.manual_seed(0)
    return random_bn(create_model("quick_vgg", 10))


def reference_rows(
    model: nn.Module, consumer: str, loader: Batches, positions: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """X, Y (bias-free) and dCE/dY at the consumer's output (before its BatchNorm), by autograd on full maps."""
    conv: Any = model.get_submodule(consumer)
    box: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        out.retain_grad()
        box["x"], box["y"] = inputs[0].detach(), out

    handle = conv.register_forward_hook(hook)
    Xs, Ys, Gs = [], [], []
    try:
        for (images, labels), pos in zip(loader, positions, strict=True):
            model.zero_grad()
            F.cross_entropy(model(images), labels, reduction="sum").backward()
            Xs.append(gather_patches(box["x"], conv, pos))
            Ys.append(gather_rows(box["y"].detach(), pos))
            assert box["y"].grad is not None
            Gs.append(gather_rows(box["y"].grad, pos))
    finally:
        handle.remove()
    return torch.cat(Xs), torch.cat(Ys), torch.cat(Gs)


def reference_grams(model: nn.Module, consumer: str, loader: Batches, positions: list[torch.Tensor]) -> GramSums:
    conv: Any = model.get_submodule(consumer)
    X, Y, G = reference_rows(model, consumer, loader, positions)
    W = weight_2d(conv)
    grams = GramSums.empty(W.shape[1], conv.in_channels, W.shape[0], True, CPU)
    grams.add(X.double(), Y.double(), G.double(), W.double())
    return grams


class Spy:
    """Wraps the pruner's capture and stage solver: records the sampled positions, the look-ahead's Gram
    sums and the importance s each stage was solved with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.positions: dict[str, list[torch.Tensor]] = {}
        self.lookahead: dict[str, GramSums] = {}
        self.s: list[torch.Tensor] = []
        real_capture, real_solve = pruner_mod.capture_original, pruner_mod.solve_stage

        def capture(*args: Any, **kwargs: Any) -> Any:
            cap = real_capture(*args, **kwargs)
            self.positions = {name: list(t.pos) for name, t in cap.targets.items()}
            self.lookahead = dict(cap.lookahead)
            return cap

        def solve(grams: GramSums, W: torch.Tensor, c: int, s: torch.Tensor, *rest: Any) -> Any:
            self.s.append(s.clone())
            return real_solve(grams, W, c, s, *rest)

        monkeypatch.setattr(pruner_mod, "capture_original", capture)
        monkeypatch.setattr(pruner_mod, "solve_stage", solve)


def uneven_plan(model: nn.Module) -> PrunePlan:
    """quick_vgg's four stages with keep counts that differ from each neighbour's."""
    plan = make_plan(model, (1, 8, 8), PruneSection(round_to=1))
    for stage, keep in zip(plan.stages, (16, 24, 40, 24), strict=True):
        stage.keep = keep
    return plan


def test_loss_gradients_match_autograd_at_the_pre_batchnorm_output() -> None:
    """G is dCE/dY at the consumer's own output, before its BatchNorm (made far from identity here).
    Caught: loss gradients replaced by ones."""
    model = quick_vgg()
    stages = make_plan(model, (1, 8, 8), PruneSection()).stages
    loader = batches((1, 8, 8))
    cap = capture_original(
        copy.deepcopy(model), stages, loader, positions=5, seed=3, grads=True, lookahead=set(), device=CPU
    )
    for stage in stages:
        t = cap.targets[stage.consumer]
        _, Y, G = reference_rows(model, stage.consumer, loader, t.pos)
        torch.testing.assert_close(torch.cat(t.Y), Y, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.cat(t.G), G, rtol=1e-4, atol=1e-6)
        assert float(G.abs().max()) > 0


@pytest.mark.parametrize("classification", [False, True])
def test_importance_is_ones_on_the_next_stages_lookahead_selection(
    classification: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s has exactly the next stage's keep count of ones, on the channels that stage's selection keeps on the
    original network, and eps elsewhere; the last stage has s = 1.
    Caught: importance inverted (eps on kept channels); the look-ahead using this stage's keep count instead
    of the next stage's."""
    model = quick_vgg()
    plan = uneven_plan(model)
    cfg = PruneSection(method="cpli", use_classification=classification, lookahead_rows_fraction=1.0, positions=4)
    loader = batches((1, 8, 8))
    spy = Spy(monkeypatch)
    prune_model(copy.deepcopy(model), plan, cfg, loader, CPU, seed=0)
    assert len(spy.s) == len(plan.stages)
    for stage, nxt, s in zip(plan.stages, [*plan.stages[1:], None], spy.s, strict=True):
        if nxt is None:
            assert torch.equal(s, torch.ones_like(s))
            continue
        ref = reference_grams(model, nxt.consumer, loader, spy.positions[nxt.consumer])
        W = weight_2d(model.get_submodule(nxt.consumer)).double()
        kept = select(ref, W, nxt.channels, torch.ones(W.shape[0]), cfg.gamma_rel * classification, nxt.keep)
        expected = torch.full((nxt.channels,), cfg.eps, dtype=torch.float64)
        expected[torch.as_tensor(kept)] = 1.0
        assert int((s == 1.0).sum()) == nxt.keep != stage.keep
        torch.testing.assert_close(s.double(), expected, rtol=0, atol=0)


def test_lookahead_grams_equal_the_unpruned_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The look-ahead's Gram sums are the next stage's sums on the original network at the same positions.
    Caught: the look-ahead's Y rows shifted by one against its X rows (XtY mismatch); loss gradients
    replaced by ones (AtA mismatch)."""
    model = quick_vgg()
    plan = uneven_plan(model)
    cfg = PruneSection(method="cpli", lookahead_rows_fraction=1.0, positions=4)
    loader = batches((1, 8, 8))
    spy = Spy(monkeypatch)
    prune_model(copy.deepcopy(model), plan, cfg, loader, CPU, seed=0)
    assert set(spy.lookahead) == {s.consumer for s in plan.stages[1:]}
    for name, got in spy.lookahead.items():
        ref = reference_grams(model, name, loader, spy.positions[name])
        assert got.rows == ref.rows == 2 * 16 * 4
        assert got.bb == pytest.approx(ref.bb, rel=1e-4)
        for field in ("P", "XtY", "yy", "AtA", "Atb"):
            torch.testing.assert_close(getattr(got, field), getattr(ref, field), rtol=1e-4, atol=1e-3, msg=field)


def test_block_outputs_get_unit_importance(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a ResNet every stage's consumer writes a residual block's output, never pruned: s = 1 everywhere and
    no look-ahead is captured. Caught: the next stage looked up by this stage's producer instead of its
    consumer (s then takes eps values at block outputs)."""
    torch.manual_seed(0)
    model = random_bn(create_model("resnet20", 10))
    cfg = PruneSection(method="cpli", macs_keep=0.6, positions=2)
    plan = make_plan(model, (3, 32, 32), cfg)
    spy = Spy(monkeypatch)
    prune_model(model, plan, cfg, batches((3, 32, 32), count=1, size=6), CPU, seed=0)
    assert len(spy.s) == len(plan.stages) == 9
    assert all(torch.equal(s, torch.ones_like(s)) for s in spy.s)
    assert spy.lookahead == {}


def test_last_stage_error_equals_the_pruned_models_real_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last stage's err_after is the pruned network's own relative error at the last consumer's sampled
    positions, against the original network. Caught: the refit weights not written into the consumer."""
    model = quick_vgg()
    plan = uneven_plan(model)
    cfg = PruneSection(method="cpli", positions=16)
    loader = batches((1, 8, 8), count=2, size=32)  # 1024 rows: far more than the last consumer's 216 kept columns
    spy = Spy(monkeypatch)
    result = prune_model(copy.deepcopy(model), plan, cfg, loader, CPU, seed=0)
    last = plan.stages[-1].consumer
    pos = spy.positions[last]
    _, Y, _ = reference_rows(model, last, loader, pos)
    _, Yhat, _ = reference_rows(result.model, last, loader, pos)
    real = float(((Y - Yhat) ** 2).sum() / (Y**2).sum())
    report = result.stages[-1]
    assert report.err_after is not None and report.err_before is not None
    assert report.err_after == pytest.approx(real, rel=1e-3)
    assert report.err_after < report.err_before


def synthetic(weights: list[list[float]], rows: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """X with independent unit channels (k = 1) and W (n, c) from `weights`."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, len(weights[0]), generator=g, dtype=torch.float64)
    return X, torch.tensor(weights, dtype=torch.float64)


def sums(X: torch.Tensor, W: torch.Tensor, G: torch.Tensor | None) -> GramSums:
    grams = GramSums.empty(W.shape[1], W.shape[1], W.shape[0], G is not None, CPU)
    grams.add(X, X @ W.t(), G, W)
    return grams


def test_channel_feeding_only_eps_outputs_is_dropped_by_importance_only() -> None:
    """Channel 0 has the largest contribution, but only to output 3, which the next stage removes (s = eps).
    cp keeps it; cp+importance drops it (and drops channel 1, the weakest, under cp).
    Caught: s left out of the objective (s = 1 in Q and q)."""
    X, W = synthetic([[0, 1.5, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 2.5], [3.0, 0, 0, 0]])
    grams = sums(X, W, None)
    s = torch.tensor([1.0, 1.0, 1.0, 0.1], dtype=torch.float64)
    cp = solve_stage(grams, W, 4, torch.ones(4), 0.0, 3, 1e-4)
    importance = solve_stage(grams, W, 4, s, 0.0, 3, 1e-4)
    assert cp.keep.tolist() == [0, 2, 3]
    assert importance.keep.tolist() == [1, 2, 3]


def test_channel_aligned_with_loss_gradient_is_kept_only_with_classification() -> None:
    """Channel 0 contributes little to reconstruction, but it alone moves the output the loss is sensitive
    to (G lies along output 0). cp drops it; cp+classification keeps it.
    Caught: loss gradients replaced by ones in the Gram sums; gamma ignored in the objective."""
    X, W = synthetic([[0.3, 0, 0, 0], [0, 1.5, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 2.5]])
    g = torch.Generator().manual_seed(1)
    G = torch.zeros(X.shape[0], 4, dtype=torch.float64)
    G[:, 0] = torch.randn(X.shape[0], generator=g, dtype=torch.float64) * 5
    grams = sums(X, W, G)
    cp = solve_stage(grams, W, 4, torch.ones(4), 0.0, 3, 1e-4)
    classification = solve_stage(grams, W, 4, torch.ones(4), 1.0, 3, 1e-4)
    assert cp.keep.tolist() == [1, 2, 3]
    assert classification.keep.tolist() == [0, 2, 3]


def kept(model: nn.Module, cfg: PruneSection, loader: Batches) -> list[list[int]]:
    plan = make_plan(model, (1, 8, 8), cfg)
    return [s.kept_channels for s in prune_model(copy.deepcopy(model), plan, cfg, loader, CPU, seed=0).stages]


def test_each_cpli_term_changes_the_selection_and_neither_is_cp() -> None:
    """cp+classification and cp+importance each keep other channels than cp somewhere, cpli differs from
    cp+importance, and cpli with both terms off is cp (same Terms, same channels).
    Caught: Terms.of with the classification term never on; Terms.of with importance never on."""
    model = quick_vgg()
    loader = batches((1, 8, 8), count=2, size=16)
    base: dict[str, Any] = {"macs_keep": 0.3, "positions": 5, "round_to": 1, "eps": 0.0}
    cp = PruneSection(method="cp", **base)
    variants = {
        "classification": PruneSection(method="cpli", use_importance=False, **base),
        "importance": PruneSection(method="cpli", use_classification=False, **base),
        "cpli": PruneSection(method="cpli", **base),
        "none": PruneSection(method="cpli", use_classification=False, use_importance=False, **base),
    }
    assert Terms.of(variants["none"]) == Terms.of(cp) == Terms(True, False, False)
    assert Terms.of(variants["cpli"]) == Terms(True, True, True)
    ref = kept(model, cp, loader)
    got = {name: kept(model, cfg, loader) for name, cfg in variants.items()}
    assert got["none"] == ref
    for name in ("classification", "importance", "cpli"):
        assert got[name] != ref, name
    assert got["cpli"] != got["importance"]
