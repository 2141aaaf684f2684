"""Running the exported files on real images: ONNX Runtime logits and accuracy, and the PyTorch reference.

Accuracy is streamed batch by batch (a validation split need not fit in memory); only the parity images,
a few hundred, are held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from cplitool.toolchain.progress import progress_bar

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Reference:
    """The parity images, their labels, and the PyTorch model's logits for them."""

    images: np.ndarray
    labels: np.ndarray
    logits: np.ndarray


def take(loader: Batches, limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The loader's first `limit` samples (all when limit is 0) as numpy batches."""
    seen = 0
    for images, labels in loader:
        if limit:
            images, labels = images[: limit - seen], labels[: limit - seen]
        yield images.numpy(), labels.numpy()
        seen += len(images)
        if limit and seen >= limit:
            return


def reference(model: nn.Module, loader: Batches, limit: int) -> Reference:
    model = model.eval().cpu()
    images, labels, logits = [], [], []
    with torch.no_grad():
        for x, y in take(loader, limit):
            images.append(x)
            labels.append(y)
            logits.append(model(torch.from_numpy(x)).float().numpy())
    return Reference(np.concatenate(images), np.concatenate(labels), np.concatenate(logits))


def infer(runner: OnnxRuntimeRunner, x: np.ndarray) -> np.ndarray:
    """Logits as float32. The input is cast to the graph's input type (FP16 graphs may take FP16); a graph
    with a fixed batch size gets chunks of that size, the last one zero-padded."""
    inp = runner.session.get_inputs()[0]
    x = x.astype(np.float16 if inp.type == "tensor(float16)" else np.float32, copy=False)
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else len(x)
    outs = []
    for i in range(0, len(x), fixed):
        chunk = x[i : i + fixed]
        padded = np.concatenate([chunk, np.zeros((fixed - len(chunk), *x.shape[1:]), x.dtype)])
        outs.append(np.asarray(runner.infer(padded), dtype=np.float32)[: len(chunk)])
    return np.concatenate(outs)


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


def onnx_accuracy(path: Path, loader: Batches, limit: int, threads: int = 0, label: str = "") -> dict[str, Any]:
    """Top-1 (percent) of the ONNX file on the loader's first `limit` samples (0: all)."""
    correct = seen = 0
    total = min(limit, len(loader.dataset)) if limit else len(loader.dataset)  # type: ignore[attr-defined]
    with OnnxRuntimeRunner(path, threads=threads) as runner, progress_bar(transient=True) as bar:
        task = bar.add_task(label or f"accuracy {path.name}", total=total, unit="img")
        for x, y in take(loader, limit):
            correct += int((infer(runner, x).argmax(1) == y).sum())
            seen += len(y)
            bar.advance(task, len(y))
    return {"top1": 100.0 * correct / max(seen, 1), "images": seen}
