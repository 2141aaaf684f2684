"""Train a dense CIFAR-10 model the way a user's own training script would, outside cplitool, and save it
in a layout cplitool did not write: {"epoch", "best_acc", "state_dict": {"module.<key>": tensor}} (the
DataParallel prefix). The comparison benchmarks then load it through model.name = "module:Class" or an
import path, model.checkpoint and the checkpoint-layout options, as a user would.

    .venv/bin/python benchmarks/train_foreign_checkpoint.py resnet20 --epochs 30
    .venv/bin/python benchmarks/train_foreign_checkpoint.py mobilenet_v2 --epochs 15
    .venv/bin/python benchmarks/train_foreign_checkpoint.py vgg16_w0.5 --epochs 25
    .venv/bin/python benchmarks/train_foreign_checkpoint.py vgg16_w0.5 --epochs 8 --lr 0.02 \
        --resume benchmarks/checkpoints/vgg16_w0.5_cifar10_25ep.pth

--resume continues a saved run with a second cosine cycle (no warm-up) from --lr, a warm restart; the result is
written under the model's usual name, never over the checkpoint it started from.

vgg16_w0.5 is the plain chain of the CPLI ablation: cplitool's vgg16_cifar at half width (3.7 M parameters,
~79 M MACs), where pruning a conv shrinks the next conv's input and feature importance acts.

Plain loop: SGD with Nesterov momentum, linear warm-up then cosine, weight decay 5e-4, batch 128, random
crop and flip (cplitool's cached CIFAR loader, for speed only), channels_last on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "user_models"))

from results_io import REPO, record

from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.recipe.sections import DataSection

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
MODELS = ("resnet20", "mobilenet_v2", "vgg16_w0.5")


def build(name: str) -> nn.Module:
    if name == "resnet20":
        from cifar_resnet import ResNet20

        return ResNet20(num_classes=10)
    if name == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5)
    if name == "vgg16_w0.5":
        from cplitool.toolchain.models.vgg import vgg16_cifar

        return vgg16_cifar(num_classes=10, width=0.5)
    raise SystemExit(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")


def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:  # type: ignore[type-arg]
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == y).sum().item()
            seen += len(y)
    return 100.0 * correct / seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--resume", default="", help="a checkpoint this script saved, to continue from")
    args = parser.parse_args()
    if not Path(args.root).is_dir():
        sys.exit(f"CIFAR-10 JPEG folder not found at {args.root} (pass --root)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = DataSection(
        name="imagefolder", root=args.root, val_split="test", batch_size=128, eval_batch_size=500,
        mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616],
    )  # fmt: skip
    train = make_loader(build_split(cfg, "train", augment=True), 128, shuffle=True, seed=0, drop_last=True)
    test = make_loader(build_split(cfg, "val", augment=False), 500, shuffle=False)
    model = build(args.model).to(memory_format=torch.channels_last)
    out = CHECKPOINTS / f"{args.model}_cifar10.pth"
    if args.resume:
        if Path(args.resume).resolve() == out.resolve():
            sys.exit(f"--resume {args.resume} is the output path: copy it to another name first")
        saved = torch.load(args.resume, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k.removeprefix("module."): v for k, v in saved.items()})
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )  # fmt: skip
    total, warmup = args.epochs * len(train), 0 if args.resume else len(train)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + torch.cos(torch.tensor(torch.pi * (s - warmup) / (total - warmup))).item())
    )  # fmt: skip
    history, start = [], time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, test)
        history.append({"epoch": epoch + 1, "top1": acc, "seconds": time.perf_counter() - start})
        print(f"epoch {epoch + 1}/{args.epochs}: test top-1 {acc:.2f}% ({history[-1]['seconds']:.0f} s)", flush=True)
    state = {"module." + k: v.contiguous() for k, v in model.state_dict().items()}
    CHECKPOINTS.mkdir(exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"epoch": args.epochs, "best_acc": history[-1]["top1"], "state_dict": state}, tmp)
    tmp.replace(out)
    table = [
        (f"resumed from {Path(args.resume).name} (lr {args.lr}, no warm-up): " if args.resume else "")
        + f"{args.model} trained {args.epochs} epochs on CIFAR-10 (JPEG q75) in {history[-1]['seconds'] / 60:.1f} min, "
        f"{args.threads} threads; final test top-1 (full 10,000 images) {history[-1]['top1']:.2f}%; saved {out.name}",
        "",
        "| epoch | test top-1 | minutes |",
        "|---:|---:|---:|",
        *[f"| {h['epoch']} | {h['top1']:.2f}% | {h['seconds'] / 60:.1f} |" for h in history],
    ]
    print("\n".join(table))
    record(
        f"dense_{args.model}_cifar10" + ("_resumed" if args.resume else ""),
        f"Dense {args.model} on CIFAR-10 (JPEG q75)",
        table,
        {"history": history},
        args.threads,
    )


if __name__ == "__main__":
    main()
