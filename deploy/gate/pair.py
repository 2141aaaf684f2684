"""The gate's model pair: a seeded random dense CNN and cplitool's own pruning of it, exported to ONNX, cached.

The pair is compute-bound on purpose (VGG-16 for CIFAR, ~313 M MACs per image): per-call overhead is a few
percent of an iteration, so the pruned/dense latency ratio follows the MACs and a slower pruned model shows.
Weights are random because latency does not depend on them; pruning is L1 magnitude, which needs no data and
gives the same widths as any other method at the same MACs target. The folder is keyed by the code that makes
the pair (models, pruning, export) and the library versions, so reruns skip preparation until that code changes.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

PAIR_CODE = (  # what makes the pair's files: a change to any of them makes a new pair
    "cplitool.toolchain.models",
    "cplitool.toolchain.prune",
    "cplitool.toolchain.counting",
    "cplitool.deploy.export.onnx_export",
    "cplitool.deploy.export.checks",
    "cplitool.deploy.export.rewrite",
    "cplitool.deploy.gate.pair",
)
PAIR_LIBRARIES = ("torch", "onnx", "onnxslim", "numpy")
PAIR_FILE = "pair.json"


@dataclass(frozen=True)
class PairSpec:
    """What the pair is: architecture, width multiplier, MACs kept by pruning, pruning method and seed."""

    arch: str = "vgg16_cifar"
    width: float = 1.0
    macs_keep: float = 0.5
    method: str = "l1"
    seed: int = 0


@dataclass(frozen=True)
class Pair:
    """Two ONNX files, dense and pruned, with their MACs (per image) and how the pruned one was made."""

    folder: Path
    spec: PairSpec
    macs: dict[str, int]
    input_shape: tuple[int, ...]

    def file(self, model: str) -> Path:
        return self.folder / f"{model}.onnx"

    @property
    def macs_ratio(self) -> float:
        return self.macs["pruned"] / self.macs["dense"]


def source_files(module: str) -> list[Path]:
    """The .py files of a module, or of every module in a package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    origin = Path(spec.origin)
    return sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]


def code_version(spec: PairSpec) -> str:
    """Hash of the pair's recipe, the source of the code that makes it, and the libraries that run it."""
    h = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    for module in PAIR_CODE:
        for path in source_files(module):
            h.update(f"{module}/{path.name}".encode())
            h.update(path.read_bytes())
    for lib in PAIR_LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=absent".encode())
    return h.hexdigest()[:16]


def load_pair(folder: Path) -> Pair | None:
    """The cached pair in `folder`, or None when it is absent or incomplete."""
    meta = folder / PAIR_FILE
    if not meta.is_file():
        return None
    doc = json.loads(meta.read_text())
    pair = Pair(folder, PairSpec(**doc["spec"]), doc["macs"], tuple(doc["input_shape"]))
    return pair if all(pair.file(m).is_file() for m in ("dense", "pruned")) else None


def make_models(spec: PairSpec) -> tuple[dict[str, nn.Module], tuple[int, ...]]:
    """The dense model (seeded random weights) and cplitool's pruning of a copy; and the input shape."""
    import torch

    from cplitool.toolchain.models import create_model, input_shape
    from cplitool.toolchain.prune.plan import make_plan
    from cplitool.toolchain.prune.pruner import prune_model
    from cplitool.toolchain.recipe.sections import PruneSection

    torch.manual_seed(spec.seed)
    dense = create_model(spec.arch, 10, width=spec.width).eval()
    shape = input_shape(spec.arch)
    cfg = PruneSection(method=spec.method, macs_keep=spec.macs_keep)
    pruned = copy.deepcopy(dense)
    prune_model(pruned, make_plan(pruned, shape, cfg), cfg, [], torch.device("cpu"), spec.seed)
    return {"dense": dense, "pruned": pruned.eval()}, shape


def export_pair(models: dict[str, nn.Module], shape: tuple[int, ...], folder: Path) -> dict[str, int]:
    """Write folder/<model>.onnx for each model; return their MACs per image."""
    from cplitool.deploy.export.onnx_export import export_onnx
    from cplitool.toolchain.counting import count_model

    for name, model in models.items():
        export_onnx(model, shape, folder / f"{name}.onnx", label=f"gate {name}")
    return {name: count_model(model, shape).macs for name, model in models.items()}


def build_pair(spec: PairSpec, folder: Path) -> dict[str, Any]:
    """Make the pair and export it into `folder`; return pair.json's content."""
    models, shape = make_models(spec)
    return {
        "spec": asdict(spec),
        "macs": export_pair(models, shape, folder),
        "input_shape": list(shape),
        "how": f"cplitool prune (method {spec.method}, macs_keep {spec.macs_keep}) of seeded random weights",
    }


def prepare_pair(spec: PairSpec, root: Path) -> tuple[Pair, bool]:
    """The pair under root/<code version>, built there first when absent; (pair, whether it was built now).
    Folders of other code versions are removed: only the current one can be gated."""
    folder = root / code_version(spec)
    cached = load_pair(folder)
    if cached is not None:
        return cached, False
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pair.", dir=root))
    try:
        (tmp / PAIR_FILE).write_text(json.dumps(build_pair(spec, tmp), indent=2) + "\n")
        for stale in root.iterdir():
            if stale.is_dir() and not stale.name.startswith("."):
                shutil.rmtree(stale)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pair = load_pair(folder)
    assert pair is not None
    return pair, True
