"""Artifacts rebuild pruned models without the dense checkpoint; foreign files are refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch_pruning as tp

from cplitool.toolchain.artifacts import ModelInfo, load_artifact, load_dense, resolve_model, save_artifact
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.rundir import RunDir
from tests.conftest import write_recipe


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
        load_dense(ModelSource("resnet20"), tmp_path / "vgg.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(UsageError, match=r"no tensors found"):
        load_dense(ModelSource("quick_vgg"), tmp_path / "empty.pt")


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
        loaded = load_dense(ModelSource("quick_vgg"), tmp_path / name)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x)), name
        assert (tmp_path / name).read_bytes() == before  # never modified


def test_resolve_model(in_tmp: Path) -> None:
    recipe = load_recipe(write_recipe(in_tmp, '[model]\nname = "quick_vgg"\n'))
    run = RunDir.for_recipe(recipe)
    # the dead end names both ways forward: the user's own weights, or training
    with pytest.raises(UsageError, match=r"no dense model .*model\.checkpoint = PATH.* run `cplitool train"):
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


def test_import_path_model_round_trips_dense_and_pruned(tmp_path: Path, user_module) -> None:
    """A user's module rebuilt from the artifact alone (its source recorded), dense and at its pruned widths,
    pruned by the existing prune code; breaking the recorded source or the resize fails the equality."""
    from cplitool.toolchain.prune.plan import make_plan
    from cplitool.toolchain.prune.pruner import prune_model
    from cplitool.toolchain.recipe.sections import PruneSection

    user_module("tinynets_art", folder=tmp_path / "nets")
    source = ModelSource("tinynets_art:TinyNet", 4, {"width": 16}, (1, 8, 8), root=str(tmp_path / "nets"))
    torch.manual_seed(0)
    dense = source.build().eval()
    info = ModelInfo(source.name, 4, {"width": 16}, input_shape=[1, 8, 8])
    save_artifact(tmp_path / "dense.pt", dense, info)
    loaded, got = load_artifact(tmp_path / "dense.pt", source)
    assert (got.arch, got.kwargs, got.input_shape) == ("tinynets_art:TinyNet", {"width": 16}, [1, 8, 8])
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), dense(x))
    cfg = PruneSection(method="l1", macs_keep=0.5, round_to=1)
    plan = make_plan(dense, (1, 8, 8), cfg)
    pruned = prune_model(dense, plan, cfg, [], torch.device("cpu"), 0).model.eval()
    assert pruned.conv1.out_channels < 16
    save_artifact(tmp_path / "pruned.pt", pruned, ModelInfo(source.name, 4, {"width": 16}, plan.to_dict()))
    reloaded, _ = load_artifact(tmp_path / "pruned.pt", source)
    assert reloaded.conv1.out_channels == reloaded.conv2.in_channels == pruned.conv1.out_channels
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned(x))


def test_an_artifact_never_chooses_the_code_that_runs(tmp_path: Path, user_module) -> None:
    """An import path recorded in a file is imported only when the recipe in hand names the same one."""
    user_module("tinynets_trust")
    source = ModelSource("tinynets_trust:TinyNet", 10, {}, (1, 8, 8), root=str(tmp_path))
    save_artifact(tmp_path / "a.pt", source.build(), ModelInfo(source.name, 10))
    with pytest.raises(
        UsageError, match=r"a.pt: built from the import path 'tinynets_trust:TinyNet' but no recipe names"
    ):
        load_artifact(tmp_path / "a.pt")
    with pytest.raises(
        UsageError, match=r"but the recipe's model.name is 'quick_vgg'.*model.name = 'tinynets_trust:TinyNet'"
    ):
        load_artifact(tmp_path / "a.pt", ModelSource("quick_vgg"))
    assert load_artifact(tmp_path / "a.pt", source)[1].arch == source.name
    (tmp_path / "tinynets_trust.py").unlink()  # the module moved away since: the message names it
    sys.modules.pop("tinynets_trust")
    with pytest.raises(UsageError, match=r"model.name 'tinynets_trust:TinyNet': no module named 'tinynets_trust'"):
        load_artifact(tmp_path / "a.pt", source)


def test_a_pruned_depthwise_conv_reloads_depthwise(tmp_path: Path) -> None:
    """MobileNet-style: pruning a depthwise conv's channels also lowers its groups; a rebuild that kept the
    old groups would not load."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 1),
        torch.nn.BatchNorm2d(16),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.Conv2d(16, 8, 1),
    ).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    graph.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=list(range(6))).prune()
    assert (model[2].groups, model[2].out_channels) == (10, 10)
    fresh = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 1),
        torch.nn.BatchNorm2d(16),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.Conv2d(16, 8, 1),
    )
    from cplitool.toolchain.artifacts import fit_to_state_dict

    rebuilt = fit_to_state_dict(fresh, model.state_dict())
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    assert rebuilt[2].groups == 10
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model(x))
