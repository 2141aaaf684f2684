"""Artifacts rebuild pruned models without the dense checkpoint; foreign files are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch_pruning as tp

from tests.conftest import write_recipe
from toolchain.artifacts import ModelInfo, load_artifact, load_dense, resolve_model, save_artifact
from toolchain.errors import UsageError
from toolchain.models import create_model
from toolchain.recipe import load_recipe
from toolchain.rundir import RunDir


def slimmed(name: str, shape: tuple[int, ...], drop: int) -> torch.nn.Module:
    """`name` with `drop` output channels removed from every prunable conv (Torch-Pruning's dependency graph)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, *shape))
    # ResNets: the first conv of each block (block outputs feed the parameter-free shortcuts)
    convs = (
        [b.conv1 for b in model.layers]
        if name.startswith("resnet")
        else [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    )
    for conv in convs:
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(drop)))
        group.prune()
    for m in model.modules():  # non-trivial BN statistics, so a lost buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize(("name", "shape"), [("quick_vgg", (1, 8, 8)), ("resnet20", (3, 32, 32))])
def test_round_trip_of_a_slimmed_model(name: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    model = slimmed(name, shape, drop=4)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths != [m.out_channels for m in create_model(name).modules() if isinstance(m, torch.nn.Conv2d)]
    plan = {"widths": widths}
    save_artifact(tmp_path / "pruned.pt", model, ModelInfo(name, 10, {}, plan, {"top1": 12.5}))
    loaded, info = load_artifact(tmp_path / "pruned.pt")
    assert (info.arch, info.num_classes, info.plan, info.metrics) == (name, 10, plan, {"top1": 12.5})
    assert [m.out_channels for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)] == widths
    assert not loaded.training
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_non_artifact_is_refused(tmp_path: Path) -> None:
    torch.save(create_model("quick_vgg").state_dict(), tmp_path / "plain.pt")
    with pytest.raises(UsageError, match=r"plain.pt: not a cplitool artifact"):
        load_artifact(tmp_path / "plain.pt")


def test_checkpoint_that_does_not_fit_the_architecture(tmp_path: Path) -> None:
    torch.save(create_model("quick_vgg").state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(UsageError, match=r"vgg.pt: checkpoint does not fit the architecture"):
        load_dense("resnet20", 10, {}, tmp_path / "vgg.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(UsageError, match=r"no tensors found"):
        load_dense("quick_vgg", 10, {}, tmp_path / "empty.pt")


def test_dense_checkpoint_formats_load_read_only(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = create_model("quick_vgg").eval()
    x = torch.randn(2, 1, 8, 8)
    files = {
        "plain.pt": lambda p: torch.save(model.state_dict(), p),
        "wrapped.pt": lambda p: torch.save({"epoch": 1, "model": model.state_dict()}, p),
        "ddp.pt": lambda p: torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, p),
        "m.safetensors": lambda p: save_file(model.state_dict(), str(p)),
    }
    for name, write in files.items():
        write(tmp_path / name)
        before = (tmp_path / name).read_bytes()
        loaded = load_dense("quick_vgg", 10, {}, tmp_path / name)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x)), name
        assert (tmp_path / name).read_bytes() == before  # never modified


def test_resolve_model(in_tmp: Path) -> None:
    recipe = load_recipe(write_recipe(in_tmp, '[model]\nname = "quick_vgg"\n'))
    run = RunDir.for_recipe(recipe)
    with pytest.raises(UsageError, match=r"no dense model .* run `cplitool train"):
        resolve_model(recipe, run, "dense")
    with pytest.raises(UsageError, match=r"expected dense, pruned, finetuned or a file path"):
        resolve_model(recipe, run, "nonexistent.pt")
    model = slimmed("quick_vgg", (1, 8, 8), drop=2)
    path = save_artifact(run.file("pruned.pt"), model, ModelInfo("quick_vgg", 10))
    run.record("prune", path, "h", {})
    _loaded, info, where = resolve_model(recipe, run, "pruned")
    assert where == path and info.arch == "quick_vgg"
    torch.save(create_model("quick_vgg").state_dict(), in_tmp / "plain.pt")
    _, info, where = resolve_model(recipe, run, str(in_tmp / "plain.pt"))  # a state_dict: the recipe's architecture
    assert where == in_tmp / "plain.pt" and info.arch == "quick_vgg"
    assert resolve_model(recipe, run, str(path))[2] == path  # an artifact by path
