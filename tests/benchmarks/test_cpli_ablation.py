"""The CPLI ablation script: its interval maths, and a --quick run on real CIFAR-10 images that resumes from
its cell cache without pruning again."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpli_ablation.py"


def test_paired_interval_is_the_t_interval() -> None:
    """Caught: the normal quantile 1.96 instead of t with n - 1 degrees of freedom."""
    ablation = load_script(SCRIPT)
    mean, half = ablation.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert ablation.interval([0.5]) == (0.5, None)


def test_options_are_paired_with_cpli_by_seed_and_single_seed_options_left_out() -> None:
    """Caught: pairing with cp (as the main table does) or across seeds."""
    ablation = load_script(SCRIPT)
    s = SimpleNamespace(targets=[0.5], seeds=[0, 1])  # what versus_cpli reads of the settings
    cell = lambda v, seed, before, after=None: {  # noqa: E731
        "target": 0.5, "variant": v, "seed": seed, "top1_before": before, **({"top1_after": after} if after else {})
    }  # fmt: skip
    cells = [cell("cp", 0, 70.0), cell("cp", 1, 10.0), cell("cpli", 0, 80.0, 85.0), cell("cpli", 1, 82.0, 86.0)]
    cells += [cell("cpli+gamma_search", 0, 81.0, 85.5), cell("cpli+gamma_search", 1, 85.0, 86.5)]
    cells += [cell("cpli+fold_bn", 0, 90.0)]
    rows = [r for r in ablation.versus_cpli(cells, s) if r.startswith("| 50%")]
    mean, half = ablation.interval([1.0, 3.0])
    assert rows == [f"| 50% | cpli+gamma_search | 2 | +{mean:.2f} ± {half:.2f} | +0.50 ± 0.00 (n=2) |"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 5 minutes on a quiet machine, far more on the shared one
def test_quick_run_records_paired_cells_and_resumes(
    cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ablation = load_script(SCRIPT)
    from cifar_resnet import ResNet20  # on sys.path through the script

    torch.manual_seed(0)
    ckpt = tmp_path / "resnet20.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in ResNet20().state_dict().items()}}, ckpt)
    argv = ["--quick", "--root", str(cifar_root), "--checkpoint", str(ckpt), "--out", str(tmp_path), "--images", "16"]
    argv += ["--variants", "cpli+image_rows"]
    ablation.main(argv)
    doc = json.loads((tmp_path / "cpli_ablation_quick.json").read_text())
    best = doc["best_variant"]
    assert best == "cpli+image_rows"  # the only one screened
    assert set(doc["aliases"]) == {"cp+importance", "cp+classification", "cpli+lookahead=1.0"}  # ResNet: no look-ahead
    keys = {(c["variant"], c["seed"]) for c in doc["cells"]}
    assert keys == {(v, s) for v in ("cp", "cpli", best) for s in (0, 1)}
    tuned = {(c["variant"], c["seed"]) for c in doc["cells"] if "top1_after" in c}
    assert tuned == {(v, s) for v in ("cp", "cpli", best) for s in (0, 1)}
    assert doc["dense"]["images"] == 500
    rows = {r["variant"]: r for r in doc["summary"]}
    assert rows["cpli"]["delta_top1_before"]["half_width_95"] is not None
    cp = [c for c in doc["cells"] if c["variant"] == "cp"]
    cpli = [c for c in doc["cells"] if c["variant"] == "cpli"]
    diffs = [
        a["top1_before"] - b["top1_before"]
        for a, b in zip(sorted(cpli, key=lambda c: c["seed"]), sorted(cp, key=lambda c: c["seed"]), strict=True)
    ]
    assert rows["cpli"]["delta_top1_before"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert (tmp_path / "cpli_ablation_quick.md").read_text().startswith("# CPLI vs CP")

    def no_pruning(*_a: object, **_k: object) -> None:
        raise AssertionError("a cached cell was pruned again")

    monkeypatch.setattr(ablation, "prune_model", no_pruning)
    monkeypatch.setattr(ablation, "finetune", no_pruning)
    ablation.main(argv)  # every cell from the cache
    assert json.loads((tmp_path / "cpli_ablation_quick.json").read_text())["summary"] == doc["summary"]


def test_importance_stats_on_a_plain_chain() -> None:
    """Caught: the eps share taken from the stage's own keep, not the next stage's, and an overlap that
    compares a stage with the wrong stage of the other variant."""
    ablation = load_script(SCRIPT)
    from cplitool.toolchain.models.vgg import vgg16_cifar

    dense = vgg16_cifar(width=0.25).eval()
    s = ablation.Settings(
        model="vgg16_w0.5", root=Path("."), checkpoint=Path("."), targets=[0.5], seeds=[0], images=1, positions=1,
        round_to=2, test_images=0, finetune_epochs=0.0, finetune_lr=0.0, threads=1,
    )  # fmt: skip
    stages = ablation.make_plan(dense, (3, 32, 32), ablation.PruneSection(macs_keep=0.5, round_to=2)).stages
    first = [list(range(st.keep)) for st in stages]
    shifted = [list(range(1, st.keep + 1)) for st in stages]  # one channel in each stage's set differs
    cells = [
        {"target": 0.5, "variant": v, "seed": 0, "kept": kept}
        for v, kept in (("cp", first), ("cp+importance", first), ("cpli", shifted), ("cp+classification", first))
    ]
    rows, stats = ablation.importance_stats(dense, cells, s)
    by_producer = {st.producer: st for st in stages}
    for st, row in zip(stages, stats, strict=True):
        nxt = by_producer.get(st.consumer)
        assert row["eps_share"] == (0.0 if nxt is None else 1 - nxt.keep / nxt.channels)
        assert row["overlap"]["cp+importance vs cp"] == 1.0
        assert row["overlap"]["cpli vs cp+classification"] == pytest.approx((st.keep - 1) / st.keep)
    assert any(r["eps_share"] > 0 for r in stats)  # a plain chain: importance acts
    assert len(rows) == 4 + len(stages)


def test_a_stale_copy_never_overwrites_a_cell_another_process_stored(tmp_path: Path) -> None:
    """Caught: two processes on one cache, the first's copy of a cell (loaded before the second fine-tuned
    it) written back over the fine-tuned cell when the first stores its own next cell."""
    ablation = load_script(SCRIPT)
    path = tmp_path / "cells.json"
    first = ablation.Cells(path, {"s": 1})
    first.put("a", {"top1_before": 1.0})
    second = ablation.Cells(path, {"s": 1})
    second.put("a", {"top1_before": 1.0, "top1_after": 2.0})
    first.put("b", {"top1_before": 3.0})
    stored = json.loads(path.read_text())["cells"]
    assert stored == {"a": {"top1_before": 1.0, "top1_after": 2.0}, "b": {"top1_before": 3.0}}
