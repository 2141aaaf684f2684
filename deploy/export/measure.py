"""Running the exported files on real images: ONNX Runtime logits and accuracy, and the PyTorch reference.

Accuracy is streamed batch by batch (a validation split need not fit in memory); only the parity images,
a few hundred, are held. Non-finite logits, PyTorch's or ONNX Runtime's, raise NonFiniteError naming the
output: a NaN model must not pass a check or score an accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from cplitool.toolchain.finite import require_finite_output
from cplitool.toolchain.progress import progress_bar

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Reference:
    """The parity images, their labels, and the PyTorch model's logits for them."""

    images: np.ndarray
    labels: np.ndarray
    logits: np.ndarray


def reference(model: nn.Module, loader: Batches, what: str) -> Reference:
    """PyTorch's logits for every image of the loader (the parity subset); non-finite logits raise."""
    model = model.eval().cpu()
    images, labels, logits = [], [], []
    with torch.no_grad():
        for x, y in loader:
            images.append(x.numpy())
            labels.append(y.numpy())
            logits.append(model(x).float().numpy())
    out = np.concatenate(logits)
    require_finite_output(out, "logits", f"{what} in PyTorch")
    return Reference(np.concatenate(images), np.concatenate(labels), out)


def infer(runner: OnnxRuntimeRunner, x: np.ndarray) -> np.ndarray:
    """Logits as float32. The input is cast to the graph's input type (FP16 graphs may take FP16); a graph
    with a fixed batch size gets chunks of that size, the last one zero-padded."""
    inp, output = runner.session.get_inputs()[0], runner.session.get_outputs()[0]
    x = x.astype(np.float16 if inp.type == "tensor(float16)" else np.float32, copy=False)
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else len(x)
    outs = []
    for i in range(0, len(x), fixed):
        chunk = x[i : i + fixed]
        padded = np.concatenate([chunk, np.zeros((fixed - len(chunk), *x.shape[1:]), x.dtype)])
        outs.append(np.asarray(runner.infer(padded), dtype=np.float32)[: len(chunk)])
    logits = np.concatenate(outs)
    require_finite_output(logits, output.name, runner.model_path.name)
    return logits


class OnnxModule(nn.Module):
    """An ONNX file behind nn.Module's call, so toolchain's own evaluation runs it unchanged: the same
    loader, metrics and progress as for the PyTorch artifact, hence directly comparable top-1."""

    def __init__(self, runner: OnnxRuntimeRunner) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(infer(self.runner, x.detach().cpu().numpy())).to(x.device)


def onnx_logits(path: Path, images: np.ndarray, batch: int, threads: int = 0) -> np.ndarray:
    with OnnxRuntimeRunner(path, threads=threads) as runner:
        return np.concatenate([infer(runner, images[i : i + batch]) for i in range(0, len(images), batch)])


def onnx_correct(path: Path, loader: Batches, threads: int = 0, label: str = "") -> np.ndarray:
    """Per image of the loader, whether the ONNX file's top-1 class is its label (the accuracy subset)."""
    correct = []
    with OnnxRuntimeRunner(path, threads=threads) as runner, progress_bar(transient=True) as bar:
        task = bar.add_task(label or f"accuracy {path.name}", total=len(loader.dataset), unit="img")  # type: ignore[attr-defined]
        for x, y in loader:
            correct.append(infer(runner, x.numpy()).argmax(1) == y.numpy())
            bar.advance(task, len(y))
    return np.concatenate(correct)
