"""The recipe schema: one dataclass per TOML section, defaults and constraints in field metadata.

Every later stage reads its settings from here, so `cplitool check` can print the whole resolved
recipe and validation can reject bad input before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "fp16", "int8")  # what export.precisions (and cplitool.export) accept
BACKENDS = ("torch", "onnxruntime", "tensorrt")  # what bench.backends accepts


def opt(default: Any, help: str, **rules: Any) -> Any:
    """A recipe field: `rules` may hold min, max, min_exclusive, choices, path (resolve against the recipe),
    name (one path component) and nonfinite (NaN/inf allowed). They apply to each item of a list or table.
    Every float must be finite and every int without a max within C's int range (validate.py)."""
    meta = {"help": help, **rules}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunSection:
    """Where the run's files go, seeds, device and threads."""

    name: str = opt(
        "",
        "run name, one path component (letters, digits, '.', '_', '-'); default: the recipe file's stem",
        name=True,
    )
    dir: str = opt("", "run directory (the only way to place a run elsewhere); default: runs/<name>", path=True)
    seed: int = opt(0, "seed for sampling, shuffling and initialisation", min=0, max=2**32 - 1)
    device: str = opt("auto", "where to compute", choices=["auto", "cpu", "cuda"])
    threads: int = opt(0, "CPU threads for torch (0: torch's default)", min=0, max=1024)


@dataclass
class ModelSection:
    """The architecture (a registered name or your own code's import path) and the dense checkpoint to start from."""

    name: str = opt(
        "quick_vgg",
        "registered architecture (`cplitool models`) or import path 'package.module:callable', e.g. "
        "'torchvision.models:mobilenet_v2' or 'mynets:ResNet20' (the recipe's folder and the working directory "
        "are importable)",
    )
    num_classes: int = opt(
        10, "number of output classes (passed when the constructor takes num_classes)", min=2, max=100_000
    )
    kwargs: dict[str, Any] = opt({}, "extra keyword arguments for the architecture's constructor")
    input_shape: list[int] = opt(
        [], "one input's shape, [C, H, W] or [C, T, H, W]; required for an import path (empty: the registry's)"
    )
    checkpoint: str = opt("", "dense checkpoint (state_dict .pt/.pth, .safetensors or cplitool artifact)", path=True)
    checkpoint_key: str = opt(
        "",
        "the checkpoint's entry holding the weights (empty: the top level, else the first of state_dict, model, "
        "model_state_dict, net, model_ema, ema)",
    )
    key_map: dict[str, str] = opt(
        {},
        "rename the checkpoint's keys: regex = replacement pairs applied in order, before the prefixes module., "
        "model. and _orig_mod. are stripped where that makes keys match",
    )
    pretrained: bool = opt(False, "load torchvision's pretrained weights (needs network access once)")


@dataclass
class DataSection:
    """The data set, its location, transforms and loader settings."""

    name: str = opt(
        "digits",
        "data set from the data registry",
        choices=["cifar10", "imagefolder", "digits", "video", "synthetic"],
    )
    root: str = opt(
        "", "data root (cifar10: torchvision layout; imagefolder/video: <root>/<split>/<class>/)", path=True
    )
    download: bool = opt(False, "cifar10 only: download into root when absent")
    train_split: str = opt("train", "imagefolder/video: folder name of the training split")
    val_split: str = opt("test", "imagefolder/video: folder name of the validation split")
    image_size: int = opt(0, "input side length (0: the data set's default)", min=0, max=4096)
    clip_len: int = opt(16, "video: frames per clip", min=1, max=1024)
    batch_size: int = opt(128, "training batch size (per process)", min=1)
    eval_batch_size: int = opt(256, "evaluation batch size", min=1)
    workers: int = opt(2, "data loader worker processes (cached data sets use none)", min=0, max=256)
    cache: str = opt(
        "auto",
        "keep decoded images in memory as uint8 (auto: when they fit in 4 GiB)",
        choices=["auto", "memory", "none"],
    )
    cache_dir: str = opt("", "where decoded caches are kept on disk; default: ~/.cache/cplitool", path=True)
    train_subset: int = opt(0, "train on N samples drawn at random with run.seed (0: all); for smoke runs", min=0)
    val_subset: int = opt(0, "evaluate on N samples drawn at random with run.seed (0: all); for smoke runs", min=0)
    mean: list[float] = opt([], "per-channel normalisation mean, one per channel (empty: the data set's default)")
    std: list[float] = opt(
        [], "per-channel normalisation std, one per channel (empty: the data set's default)", min_exclusive=0.0
    )
    synthetic_shape: list[int] = opt([3, 32, 32], "synthetic: shape of one input (C,H,W or C,T,H,W)", min=1, max=4096)
    synthetic_samples: int = opt(512, "synthetic: number of random samples", min=1)
    synthetic_classes: int = opt(10, "synthetic: number of label classes", min=2)


@dataclass
class TrainSection:
    """Dense training (`cplitool train`), skipped when model.checkpoint is given."""

    epochs: int = opt(30, "training epochs", min=1)
    optimizer: str = opt("sgd", "optimizer", choices=["sgd", "adamw"])
    lr: float = opt(0.1, "peak learning rate (at most 10: beyond, SGD diverges)", min_exclusive=0.0, max=10.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=1.0)
    nesterov: bool = opt(True, "SGD with Nesterov momentum")
    weight_decay: float = opt(5e-4, "weight decay", min=0.0)
    schedule: str = opt("cosine", "learning-rate schedule", choices=["cosine", "onecycle", "constant"])
    warmup_epochs: float = opt(0.0, "cosine: linear warm-up length in epochs", min=0.0)
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy", min=0.0, max=0.5)
    amp: bool = opt(True, "mixed precision on GPU (ignored on CPU)")
    channels_last: bool = opt(True, "channels_last memory format on GPU (ignored on CPU)")
    max_steps: int = opt(0, "stop each epoch after this many steps (0: full epochs); for smoke runs", min=0)


@dataclass
class PruneSection:
    """Channel pruning (`cplitool prune`): how channels are chosen and how many MACs remain."""

    method: str = opt("cpli", "channel selection", choices=["cpli", "cp", "l1", "random"])
    compare: list[str] = opt(
        [],
        "other methods pruned to the same MACs and evaluated before fine-tuning, for rows beside prune.method "
        "(l1 is data-free: what reconstruction buys)",
        choices=["cpli", "cp", "l1", "random"],
    )
    scope: str = opt(
        "blocks",
        "which channels may go: blocks (a conv feeding exactly one conv, inside blocks, as the paper) or all "
        "(every coupled group: residual streams, depthwise/grouped convs, concatenations, squeeze-excitation)",
        choices=["blocks", "all"],
    )
    macs_keep: float = opt(
        0.5, "fraction of the dense model's MACs to keep (0.5 keeps half)", min_exclusive=0.0, max=1.0
    )
    round_to: int = opt(8, "round kept widths to a multiple of this (1: off)", min=1)
    skip: list[str] = opt([], "layer names (module paths) never to prune")
    layer_keep: dict[str, float] = opt(
        {}, "per-layer channel keep ratios that override the searched uniform ratio", min_exclusive=0.0, max=1.0
    )
    num_images: int = opt(5000, "images sampled for reconstruction", min=1)
    positions: int = opt(10, "output positions sampled per image", min=1, max=65536)
    batch_size: int = opt(100, "images per batch while sampling", min=1)
    use_classification: bool = opt(True, "add the classification-loss term (cpli)")
    use_importance: bool = opt(True, "weigh reconstruction by next-layer feature importance (cpli)")
    gamma_rel: float = opt(1.0, "weight of the classification term relative to reconstruction", min=0.0)
    eps: float = opt(0.1, "importance of features the next stage removes", min=0.0, max=1.0)
    fold_bn: bool = opt(
        False,
        "cpli: weigh each output's reconstruction by the squared scale of the BatchNorm right after the consumer "
        "(every stage, block outputs included)",
    )
    classification_rows: str = opt(
        "position",
        "cpli: one classification-term row per sampled position, or per image (its positions summed first)",
        choices=["position", "image"],
    )
    refit_classification: bool = opt(
        False,
        "cpli: refit the weights on reconstruction plus the classification term (conjugate gradient on the "
        "stored sampled rows: more memory) instead of plain least squares",
    )
    lookahead_rows_fraction: float = opt(
        0.25,
        "seeded fraction of sampled rows for the look-ahead's Gram (it only ranks the next stage's channels; "
        "speed/accuracy trade-off, 1.0 uses every row)",
        min_exclusive=0.0,
        max=1.0,
    )
    ridge: float = opt(
        1e-4,
        "relative ridge of the least-squares weight fit (toward the original weights); the search's smallest",
        min=0.0,
    )
    ridge_search: bool = opt(
        True,
        "choose the refit's ridge per layer on held-out images (every 5th sampled image): prune.ridge or a power "
        "of ten up to 1, or the original weights when no fit reconstructs those images better",
    )
    gamma_search: list[float] = opt(
        [],
        "cpli, scope blocks: choose gamma_rel per stage among these values by the network's cross-entropy on the "
        "held-out images (every 5th sampled image; selected and refitted on the others), as the refit's ridge "
        "is; empty: prune.gamma_rel at every stage",
        min=0.0,
    )


@dataclass
class FinetuneSection(TrainSection):
    """Fine-tuning the pruned model with distillation from the dense one (`cplitool finetune`).

    The optimizer and schedule keys are [train]'s (inherited, so the two cannot drift apart).
    """

    epochs: int = opt(10, "fine-tuning epochs", min=0)
    lr: float = opt(0.01, "peak learning rate (at most 10: beyond, SGD diverges)", min_exclusive=0.0, max=10.0)
    kd_weight: float = opt(0.5, "weight of distillation from the dense model (0: plain fine-tuning)", min=0.0, max=1.0)
    kd_temperature: float = opt(4.0, "distillation temperature", min_exclusive=0.0)


@dataclass
class ExportSection:
    """ONNX export and its parity checks (`cplitool export`)."""

    opset: int = opt(17, "ONNX opset", min=13, max=21)
    exporter: str = opt(
        "torchscript",
        "torch.onnx exporter: torchscript (fast, one self-contained file) or dynamo (torch.export based)",
        choices=["torchscript", "dynamo"],
    )
    precisions: list[str] = opt(["fp32"], "precisions to export: fp32, fp16, int8")
    dynamic_batch: bool = opt(True, "export with a dynamic batch axis")
    simplify: bool = opt(True, "simplify the graph with onnxslim")
    keep_io_fp32: bool = opt(True, "fp16: keep graph inputs and outputs in FP32")
    parity_images: int = opt(256, "validation images for the parity check (a seeded random sample)", min=1)
    eval_images: int = opt(
        0, "validation images for each ONNX file's accuracy (a seeded random sample; 0: the whole split)", min=0
    )
    calib_images: int = opt(512, "int8: training images for calibration (a seeded random sample)", min=1)
    calib_method: str = opt(
        "minmax",
        "int8: activation-range calibration (onnxruntime's MinMax, Entropy or Percentile 99.999)",
        choices=["minmax", "entropy", "percentile"],
    )
    int8_keep_ends: bool = opt(
        True, "int8: keep the first convolution and the classifier in FP32 (faster on CPU, as accurate: measured)"
    )
    atol_fp32: float = opt(1e-4, "fp32 parity: absolute tolerance", min=0.0)
    rtol_fp32: float = opt(1e-4, "fp32 parity: relative tolerance", min=0.0)
    atol_fp16: float = opt(1e-2, "fp16 parity: absolute tolerance", min=0.0)
    rtol_fp16: float = opt(1e-2, "fp16 parity: relative tolerance", min=0.0)
    int8_max_drop: float = opt(
        1.0, "int8: fail when the top-1 drop versus fp32 exceeds this many points with 95% confidence", min=0.0
    )


@dataclass
class TrtSection:
    """TensorRT engine building (`cplitool export --trt`, GPU hosts only)."""

    min_batch: int = opt(1, "optimization profile: smallest batch", min=1, max=65536)
    opt_batch: int = opt(64, "optimization profile: batch tactics are tuned for", min=1, max=65536)
    max_batch: int = opt(256, "optimization profile: largest batch", min=1, max=65536)
    profile_batches: list[int] = opt([], "build one profile per batch listed (overrides min/opt/max)", min=1, max=65536)
    workspace_mb: int = opt(4096, "builder workspace limit in MiB", min=1)
    opt_level: int = opt(3, "builder optimization level", min=0, max=5)
    timing_cache: str = opt("", "timing cache reused across builds; default: <run dir>/trt.cache", path=True)


@dataclass
class BenchSection:
    """Latency benchmarking (`cplitool bench`)."""

    batches: list[int] = opt([1, 64], "batch sizes to time", min=1, max=65536)
    backends: list[str] = opt(list(BACKENDS), "backends to try; unavailable ones are skipped with a reason")
    warmup_ms: float = opt(200.0, "time-based warm-up per measurement", min=0.0)
    min_duration_s: float = opt(
        3.0, "minimum timed duration per model and batch (split over the rounds)", min=0.0, max=3600.0
    )
    min_iters: int = opt(10, "minimum timed iterations per model and batch (split over the rounds)", min=1)
    threads: int = opt(0, "CPU threads for CPU backends (0: all cores)", min=0, max=1024)
    repeats: int = opt(5, "interleaved dense/pruned rounds (A B A B ...); the ratio is their median", min=1, max=1000)
    trace: bool = opt(False, "write a per-iteration trace")
    fp16: bool = opt(True, "on CUDA, also time the torch backend in FP16")
    cuda_graphs: bool = opt(True, "on CUDA, also time the torch backend replayed as CUDA graphs")


@dataclass
class RegressSection:
    """The CI latency gate (`cplitool regress`)."""

    baseline: str = opt(
        "", "baseline bench JSON for `cplitool regress` (one per device, e.g. deploy/baselines/cpu.json)", path=True
    )
    tolerance: float = opt(
        0.0,
        "allowed relative slowdown (0.05 = 5%); 0: the measured baseline's, else 2 x the two files' combined spread "
        "(at least 5%)",
        min=0.0,
    )


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "model": ModelSection,
    "data": DataSection,
    "train": TrainSection,
    "prune": PruneSection,
    "finetune": FinetuneSection,
    "export": ExportSection,
    "trt": TrtSection,
    "bench": BenchSection,
    "regress": RegressSection,
}


@dataclass
class Recipe:
    """A validated recipe with every default filled in and every path absolute."""

    source: Path
    run: RunSection = field(default_factory=RunSection)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    prune: PruneSection = field(default_factory=PruneSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    export: ExportSection = field(default_factory=ExportSection)
    trt: TrtSection = field(default_factory=TrtSection)
    bench: BenchSection = field(default_factory=BenchSection)
    regress: RegressSection = field(default_factory=RegressSection)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.dir) if self.run.dir else Path.cwd() / "runs" / self.run.name

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def section_hash(self, *names: str) -> str:
        """Hash of the named sections' resolved values: a stage is stale when its sections change."""
        blob = json.dumps({n: dataclasses.asdict(getattr(self, n)) for n in names}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
