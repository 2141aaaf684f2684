"""cplitool's Python API on your own model, notebook-style: train, prune, export, bench, reload.

Runs offline on a CPU in about a minute (scikit-learn's bundled 8x8 digits):

    python examples/quickstart_api.py --out /tmp/cplitool-api

The test suite runs it with shorter settings (tests/examples/test_quickstart_api.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import cplitool


# %% Your own network: any nn.Module whose convs feed each other through BatchNorm/ReLU.
class DigitsNet(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


# %% Data: 1,437 training and 360 test digits, scaled to [0, 1].
def digits_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.tensor(labels)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=generator)
    train, test = order[:1437], order[1437:]
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size, shuffle=True, generator=generator),
        DataLoader(TensorDataset(x[test], y[test]), 512),
    )


def train(model: nn.Module, loader: DataLoader, epochs: int, lr: float) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()


@torch.no_grad()
def top1(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return 100.0 * correct / len(loader.dataset)  # type: ignore[arg-type]


def main(out: Path, epochs: int = 10, bench_seconds: float = 1.0) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a network this small runs fastest on one thread (no waiting on busy cores)
    train_loader, test_loader = digits_loaders()
    x = torch.randn(1, 1, 8, 8)  # one example input: its shape is what the API needs

    # %% Train the dense model (or load your own weights into it).
    dense = DigitsNet()
    train(dense, train_loader, epochs, lr=0.05)
    print(f"dense top-1 {top1(dense, test_loader):.2f}%")

    # %% Prune to half the MACs with CPLI; `dense` is left as it was.
    pruned, report = cplitool.prune(dense, train_loader, macs_keep=0.5, method="cpli", example_input=x, num_images=500)
    print(report)
    print(f"pruned top-1 before fine-tuning {top1(pruned, test_loader):.2f}%")

    # %% Fine-tune briefly, then save the weights (a plain state_dict at the pruned widths).
    train(pruned, train_loader, max(epochs // 3, 1), lr=0.01)
    print(f"fine-tuned top-1 {top1(pruned, test_loader):.2f}%")
    torch.save(pruned.state_dict(), out / "pruned.pt")

    # %% Export both to checked ONNX (parity with PyTorch is verified; a failure raises).
    for name, model in (("dense", dense), ("pruned", pruned)):
        result = cplitool.export(model, out / f"{name}.onnx", example_input=x)
        print(f"{result.path}: {result.parity.summary()}")

    # %% Time dense against pruned, interleaved, with ONNX Runtime on one thread.
    timing = cplitool.bench(out / "dense.onnx", out / "pruned.onnx", batch=64, threads=1, duration_s=bench_seconds)
    print(timing.table())

    # %% Reload the pruned weights into a fresh dense module: it is resized to the saved widths.
    reloaded = cplitool.load(out / "pruned.pt", model=DigitsNet())
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned(x))
    return {
        "macs_keep": report.macs_keep,
        "dense_top1": top1(dense, test_loader),
        "pruned_top1": top1(pruned, test_loader),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/api-example"))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    main(args.out, args.epochs)
