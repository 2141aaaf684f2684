"""The `cplitool` entry point: commands, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_recipe

TINY = '[run]\nthreads = 1\n[model]\nname = "quick_vgg"\n[train]\nepochs = 1\nmax_steps = 3\n'


def test_models_lists_the_registry(cli) -> None:
    result = cli("models", "--json")
    assert result.code == 0
    models = {m["name"]: m for m in json.loads(result.out)}
    assert models["c3d"]["input_shape"] == [3, 16, 112, 112] and "vgg16_cifar" in models


def test_info_counts_at_the_shape_the_data_feeds(in_tmp: Path, cli) -> None:
    (in_tmp / "clips" / "train").mkdir(parents=True)
    (in_tmp / "clips" / "test").mkdir()
    recipe = write_recipe(
        in_tmp,
        '[model]\nname = "c3d"\nnum_classes = 5\n[data]\nname = "video"\nroot = "clips"\nclip_len = 8\nimage_size = 56\n',
    )
    result = cli("info", recipe, "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["input_shape"] == [3, 8, 56, 56]
    first = info["layers"][0]
    assert (first["kind"], first["macs"]) == ("Conv3d", 64 * 3 * 27 * 8 * 56 * 56)
    table = cli("info", recipe)
    assert table.code == 0 and "features.0" in table.out and "Conv3d" in table.out


def test_train_then_eval_and_info_of_the_artifact(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, TINY)
    assert cli("train", recipe).code == 0
    assert (in_tmp / "runs" / "r" / "dense.pt").is_file()
    again = cli("train", recipe)
    assert again.code == 0 and "up to date" in again.err
    result = cli("eval", recipe, "--json")
    assert result.code == 0
    metrics = json.loads(result.out)
    assert metrics["samples"] == 360 and 0.0 <= metrics["top1"] <= metrics["top5"] <= 100.0
    plain = cli("eval", recipe, "--artifact", in_tmp / "runs" / "r" / "dense.pt")
    assert plain.code == 0 and f"top-1 {metrics['top1']:.2f}%" in plain.out
    assert cli("info", recipe, "--artifact", "dense").code == 0


def test_missing_artifact_is_a_usage_error(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, TINY)
    result = cli("eval", recipe, "--artifact", "pruned")
    assert result.code == 2
    assert "no pruned model" in result.err and f"cplitool prune {recipe}" in result.err
    assert "Traceback" not in result.err


def test_error_text_with_brackets_is_printed_verbatim(in_tmp: Path, cli) -> None:
    result = cli("check", write_recipe(in_tmp, "model = 3\n"))
    assert result.code == 2
    assert "expected a table ([model])" in result.err  # not eaten as rich markup
    result = cli("check", write_recipe(in_tmp, "[bench]\nbatches = [0]\n"))
    assert "bench.batches[0]: expected a value >= 1, got 0" in result.err


def test_click_usage_errors_exit_2(cli) -> None:
    assert cli("train").code == 2  # missing RECIPE
    assert cli("no-such-command").code == 2


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "[train]\nepocs = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cplitool.cli.app", "check", str(recipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "train.epocs: unknown key (did you mean 'epochs'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
    assert REPO.is_dir()


USER_RECIPE = """
[run]
threads = 1
[model]
name = "usernet_cli:TinyNet"
input_shape = [1, 8, 8]
kwargs = { width = 16 }
checkpoint = "weights/tiny.pth"
[data]
name = "digits"
eval_batch_size = 512
[prune]
method = "l1"
macs_keep = 0.5
round_to = 1
"""


def test_a_users_module_and_foreign_checkpoint_through_eval_and_prune(in_tmp: Path, cli, user_module) -> None:
    """The module sits next to the recipe (not in the working directory) and the checkpoint is a training
    script's {"state_dict": {"module." + key: ...}}: eval, prune and eval of the pruned artifact need no
    other input, and eval reports the top-1 of exactly the weights in the file."""
    import torch

    from cplitool.toolchain.data import build_split
    from cplitool.toolchain.models.source import ModelSource
    from cplitool.toolchain.recipe.sections import DataSection

    project = in_tmp / "project"
    user_module("usernet_cli", folder=project)
    torch.manual_seed(0)
    model = ModelSource("usernet_cli:TinyNet", 10, {"width": 16}, root=str(project)).build().eval()
    (project / "weights").mkdir()
    checkpoint = project / "weights" / "tiny.pth"
    torch.save(
        {"epoch": 7, "best_acc": 12.0, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
        checkpoint,
    )
    before = checkpoint.read_bytes()
    recipe = write_recipe(project, USER_RECIPE)

    val = build_split(DataSection(name="digits"), "val", augment=False)
    x, y = zip(*(val.dataset[i] for i in range(len(val.dataset))), strict=True)
    with torch.no_grad():
        expected = 100.0 * (model(torch.stack(x)).argmax(1) == torch.tensor(y)).float().mean().item()

    dense = cli("eval", recipe, "--json")
    assert dense.code == 0, dense.err
    assert json.loads(dense.out)["top1"] == pytest.approx(expected, abs=1e-6)
    pruned = cli("prune", recipe)
    assert pruned.code == 0, pruned.err
    again = cli("eval", recipe, "--artifact", "pruned", "--json")
    assert again.code == 0, again.err
    info = cli("info", recipe, "--artifact", "pruned", "--json")
    conv1 = next(layer for layer in json.loads(info.out)["layers"] if layer["name"] == "conv1")
    assert conv1["out_channels"] == 8  # reloaded at its pruned width
    assert checkpoint.read_bytes() == before


def test_version_and_short_help(cli) -> None:
    from cplitool.toolchain import __version__

    version = cli("--version")
    assert version.code == 0 and version.out.strip() == f"cplitool {__version__}"
    short = cli("-h")
    assert short.code == 0 and "Usage: " in short.out and "--version" in short.out and "init" in short.out


def test_flag_help_shows_no_type_placeholders(cli) -> None:
    """Typer's rich help printed `<bool>` beside every flag; each command's help must read cleanly."""
    from cplitool.cli.app import app

    commands = [c.name for c in app.registered_commands]
    assert {"init", "prune", "export", "bench"} <= set(commands)
    for name in commands:
        result = cli(name, "-h")
        assert result.code == 0, name
        assert "<bool>" not in result.out, name


def test_prune_without_a_dense_model_names_both_ways_forward(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, TINY)
    result = cli("prune", recipe)
    assert result.code == 2
    text = " ".join((result.out + result.err).split())  # rich may wrap the line
    assert "model.checkpoint = PATH" in text and "cplitool train" in text and "Traceback" not in text
