"""Dense and pruned model pairs for latency benchmarks (random weights: latency does not depend on them).

Pruning comes from cplitool's own `prune` stage (cplitool.toolchain.prune.stage.prune_stage, method l1 on
synthetic inputs) when it is importable; otherwise from Torch-Pruning directly (L1 magnitude, the
uniform ratio bisected to the MACs target); otherwise, for vgg16_cifar only, the width-scaled model as
a stand-in. Every pair says which way it was made.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cplitool.toolchain.counting import count_model  # noqa: E402
from cplitool.toolchain.models import create_model, input_shape  # noqa: E402


@dataclass
class PrunedPair:
    arch: str
    dense: nn.Module
    pruned: nn.Module
    how: str  # which pruning made it
    macs_dense: int
    macs_pruned: int

    @property
    def macs_ratio(self) -> float:
        return self.macs_pruned / self.macs_dense


RECIPE = """
[run]
name = "{arch}-bench"
dir = "{dir}"
device = "cpu"
[model]
name = "{arch}"
[data]
name = "synthetic"
synthetic_shape = {shape}
synthetic_samples = 64
workers = 0
[prune]
method = "{method}"
macs_keep = {keep}
num_images = 64
batch_size = 32
"""


def via_cplitool(arch: str, dense: nn.Module, keep: float, method: str) -> nn.Module | None:
    """Prune with cplitool's prune stage in a throw-away run directory; None when it, or a library it imports
    only once it runs (torch_pruning), is not installed."""
    try:
        return _prune_stage(arch, dense, keep, method)
    except ModuleNotFoundError as e:
        print(f"cplitool prune unavailable here ({e}); trying Torch-Pruning", file=sys.stderr)
        return None


def _prune_stage(arch: str, dense: nn.Module, keep: float, method: str) -> nn.Module:
    from cplitool.toolchain.artifacts import ModelInfo, load_artifact, save_artifact
    from cplitool.toolchain.prune.stage import prune_stage
    from cplitool.toolchain.recipe import load_recipe
    from cplitool.toolchain.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        shape = list(input_shape(arch))
        path = Path(tmp) / "r.toml"
        path.write_text(RECIPE.format(arch=arch, dir=Path(tmp) / "run", shape=shape, method=method, keep=keep))
        recipe = load_recipe(path)
        run = RunDir(recipe.run_dir)
        run.path.mkdir(parents=True)
        artifact = save_artifact(run.file("dense.pt"), dense, ModelInfo(arch, 10))
        run.record("train", artifact, "random-init", {})
        prune_stage(recipe)
        pruned_path = run.artifact("prune")
        assert pruned_path is not None
        model, _ = load_artifact(pruned_path)
    return model


def via_torch_pruning(dense: nn.Module, shape: tuple[int, ...], keep: float, round_to: int = 8) -> nn.Module | None:
    """L1-magnitude channel pruning with one uniform ratio, bisected until MACs are at most `keep` of dense."""
    try:
        import torch_pruning as tp
    except ModuleNotFoundError:
        print("Torch-Pruning is not installed here", file=sys.stderr)
        return None
    example = torch.zeros(1, *shape)
    target = keep * count_model(dense, shape).macs
    ignored = [m for m in dense.modules() if isinstance(m, nn.Linear)]

    def prune(ratio: float) -> nn.Module:
        model = copy.deepcopy(dense)
        ign = [dict(model.named_modules())[n] for n, m in dense.named_modules() if m in ignored]
        pruner = tp.pruner.MagnitudePruner(
            model,
            example,
            tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=ign,
            round_to=round_to,
        )
        pruner.step()
        return model

    low, high, best = 0.0, 0.95, None
    for _ in range(8):
        mid = (low + high) / 2
        model = prune(mid)
        if count_model(model, shape).macs <= target:
            best, high = model, mid
        else:
            low = mid
    return best


def pruned_pair(arch: str, keep: float = 0.5, method: str = "l1", seed: int = 0) -> PrunedPair:
    torch.manual_seed(seed)
    dense = create_model(arch, 10).eval()
    shape = input_shape(arch)
    pruned, how = via_cplitool(arch, copy.deepcopy(dense), keep, method), f"cplitool prune (method {method})"
    if pruned is None:
        pruned, how = via_torch_pruning(dense, shape, keep), "Torch-Pruning L1 magnitude (cplitool prune absent)"
    if pruned is None and arch == "vgg16_cifar":
        pruned = create_model(arch, 10, width=keep**0.5)
        how = "width-scaled stand-in (neither cplitool prune nor Torch-Pruning installed)"
    if pruned is None:
        raise RuntimeError(f"{arch}: no way to prune here (install torch-pruning)")
    pruned = pruned.eval()
    return PrunedPair(arch, dense, pruned, how, count_model(dense, shape).macs, count_model(pruned, shape).macs)
