"""The third fault campaign (issue 20) as a corpus: each reproduction run through the real CLI in-process
from a work directory holding the digits recipe (r.toml), its dense model (d.pt) and an ONNX file of it.

Every bad input exits 2 with one error line naming the file, key or flag; no input changes; nothing is
left half-written; Ctrl-C exits 130 and SIGTERM 143 naming the stage, with runs/latest unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import DIGITS_HEAD, REPO
from tests.toolchain.fuzz.test_fuzz import assert_one_clean_error, tree

HERE = Path(__file__).parent
BASE = DIGITS_HEAD.format(name="fuzz", run_extra="") + "[train]\nepochs = 1\nmax_steps = 1\n"
FAST_BENCH = ("--duration", "0.05", "--repeats", "1")

pytestmark = pytest.mark.timeout(60)  # nothing may hang: a FIFO read blocked forever before


def onnx_model(
    path: Path,
    dims: tuple[int, ...] = (1, 1, 8, 8),
    elem: int = TensorProto.FLOAT,
    inputs: int = 1,
    outputs: int = 1,
    opset: int = 17,
    domain: str = "",
    external: str | None = None,
) -> Path:
    """A one-node graph (Relu, or Add of an external weight) with the given input, outputs and opset."""
    ins = [helper.make_tensor_value_info(f"x{i}", elem, list(dims)) for i in range(inputs)]
    outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, list(dims)) for i in range(outputs)]
    op = "Foo" if domain else "Relu"
    nodes = [helper.make_node(op, ["x0"], [f"y{i}"], domain=domain) for i in range(outputs)]
    if external:
        nodes = [helper.make_node("Add", ["x0", "w"], ["y0"])]
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph(nodes, "g", ins, outs), opset_imports=imports)
    if external:
        w = numpy_helper.from_array(np.ones(1, np.float32), "w")
        w.data_location = TensorProto.EXTERNAL
        w.ClearField("raw_data")
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
        model.graph.initializer.append(w)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """r.toml, d.pt (a dense artifact of its model) and d.onnx (a valid ONNX file), two levels inside tmp_path."""
    folder = tmp_path / "a" / "b" / "work"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    (folder / "r.toml").write_text(BASE, encoding="utf-8")
    shutil.copyfile(HERE / "checkpoints" / "good_artifact.pt", folder / "d.pt")
    onnx_model(folder / "d.onnx")
    return folder


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def socket_at(path: Path) -> Path:
    """A Unix socket node: not a regular file, like a device, but safe to lose (never point a test at
    /dev/null: code that still renamed over devices replaced it, as root, with a regular file)."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    return path


def device_at(path: Path) -> Path:
    """A character device node of our own (a copy of /dev/null's numbers) in the test's folder; needs root."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under root with its bytes (regular files), its target (links) or its file type."""
    out: dict[str, bytes | str] = {}
    for p in root.rglob("*"):
        key = str(p.relative_to(root))
        mode = os.lstat(p).st_mode
        if stat.S_ISLNK(mode):
            out[key] = "link:" + os.readlink(p)
        elif stat.S_ISREG(mode):
            out[key] = p.read_bytes()
        else:  # a folder, FIFO, socket or device: replacing it with a file changes its type
            out[key] = f"type {stat.S_IFMT(mode):o}"
    return out


def deep_json(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def saved(name: str, change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> Callable[[Path], Any]:
    """A setup writing `name`: the recipe's dense model's state_dict as `change` leaves it."""

    def write(work: Path) -> None:
        from cplitool.toolchain.models.source import ModelSource
        from cplitool.toolchain.recipe import load_recipe

        state = ModelSource.of(load_recipe(work / "r.toml")).build().state_dict()
        torch.save(change(dict(state)), work / name)

    return write


def last_layer(state: dict[str, torch.Tensor], classes: int) -> dict[str, torch.Tensor]:
    w, b = [k for k in state if k.endswith("weight")][-1], [k for k in state if k.endswith("bias")][-1]
    return {**state, w: torch.zeros(classes, state[w].shape[1]), b: torch.zeros(classes)}


def bool_first(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    first = next(k for k in state if k.endswith("weight"))
    return {**state, first: state[first].bool()}


def text(name: str, content: str) -> Callable[[Path], Any]:
    """A setup writing `content` to `name` (someone's own file)."""
    return lambda work: (work / name).write_text(content)


def check_with(*sets: str) -> list[str]:
    """`cplitool check r.toml --set A --set B ...`"""
    return ["check", "r.toml", *(arg for s in sets for arg in ("--set", s))]


EXTERNAL = {"outside": "../outside/w.bin", "passwd": "/etc/passwd", "dev-zero": "/dev/zero", "missing": "w.bin"}


def external(location: str) -> Callable[[Path], Any]:
    """A setup writing e.onnx whose one weight lives in an external file at `location`."""
    return lambda work: onnx_model(work / "e.onnx", external=location)


# (id, setup(work), argv, fragment of the one error line); every case must exit 2 and change nothing.
CASES: list[tuple[str, Callable[[Path], Any] | None, list[str], str]] = [
    # 1, 2: an output that is an input or a device
    ("1-export-onto-its-checkpoint", None, ["export", "d.pt", "-o", "d.pt"], "is the input d.pt"),
    (
        "1-export-onto-a-hard-link",
        lambda w: os.link(w / "d.pt", w / "h.onnx"),
        ["export", "d.pt", "-o", "h.onnx"],
        "is the input",
    ),
    (
        "1-export-onto-a-symlink",
        lambda w: os.symlink("d.pt", w / "s.onnx"),
        ["export", "d.pt", "-o", "s.onnx"],
        "is the input",
    ),
    ("2-export-onto-a-fifo", lambda w: fifo(w / "f.onnx"), ["export", "d.pt", "-o", "f.onnx"], "is a FIFO"),
    ("2-export-onto-a-socket", lambda w: socket_at(w / "s.onnx"), ["export", "d.pt", "-o", "s.onnx"], "is a socket"),
    ("2-export-onto-a-device", lambda w: device_at(w / "n.onnx"), ["export", "d.pt", "-o", "n.onnx"], "is a device"),
    (
        "2-bench-output-onto-a-device",
        lambda w: device_at(w / "n.json"),
        ["bench", "d.onnx", "-o", "n.json"],
        "is a device",
    ),
    ("2-export-onto-a-folder", lambda w: (w / "dir.onnx").mkdir(), ["export", "d.pt", "-o", "dir.onnx"], "is a folder"),
    # 4: FIFOs as inputs
    ("4-eval-a-fifo-onnx", lambda w: fifo(w / "f.onnx"), ["eval", "r.toml", "--artifact", "f.onnx"], "is a FIFO"),
    ("4-bench-a-fifo-onnx", lambda w: fifo(w / "f.onnx"), ["bench", "f.onnx"], "is a FIFO"),
    ("4-checkpoint-a-fifo", lambda w: fifo(w / "f.pt"), ["export", "f.pt"], "checkpoint is a FIFO"),
    ("4-recipe-a-fifo", lambda w: fifo(w / "q.toml"), ["check", "q.toml"], "is a FIFO"),
    ("4-regress-a-fifo", lambda w: fifo(w / "q.json"), ["regress", "q.json", "--baseline", "q.json"], "is a FIFO"),
    # 5: numeric flags hold the recipe's limits
    ("5-bench-duration-inf", None, ["bench", "d.onnx", "--duration", "inf"], "--duration: expected a finite"),
    ("5-bench-duration-nan", None, ["bench", "d.onnx", "--duration", "nan"], "--duration: expected a finite"),
    ("5-bench-duration-cap", None, ["bench", "d.onnx", "--duration", "1e9"], "--duration: expected a value <= 3600"),
    ("5-bench-batch-100000", None, ["bench", "d.onnx", "--batch", "100000"], "--batch: expected a value <= 65536"),
    ("5-bench-batch-0", None, ["bench", "d.onnx", "--batch", "0"], "--batch: expected a value >= 1"),
    ("5-bench-repeats-0", None, ["bench", "d.onnx", "--repeats", "0"], "--repeats: expected a value >= 1"),
    # 6, 7: overwriting what cplitool did not write
    (
        "6-baseline-onto-its-input",
        lambda w: [(w / n).write_text('{"schema": "cplitool-bench/1"}') for n in ("a.json", "b.json")],
        ["baseline", "a.json", "a.json", "b.json"],
        "is the input a.json",
    ),
    ("6-baseline-onto-notes", text("n.json", "my notes"), ["baseline", "n.json", "d.onnx", "d.onnx"], "--force"),
    ("7-bench-output-onto-notes", text("notes.json", "notes"), ["bench", "d.onnx", "-o", "notes.json"], "--force"),
    (
        "7-bench-output-onto-foreign-json",
        text("o.json", '{"a": 1}'),
        ["bench", "d.onnx", "-o", "o.json"],
        "cplitool wrote",
    ),
    ("9-bench-output-onto-its-onnx", None, ["bench", "d.onnx", "-o", "d.onnx"], "is the input d.onnx"),
    # 8: external data
    *[
        (f"8-external-{name}", external(location), ["bench", "e.onnx"], "external weights")
        for name, location in EXTERNAL.items()
    ],
    (
        "8-external-symlink-out",
        lambda w: (os.symlink("/etc/hostname", w / "w.bin"), onnx_model(w / "e.onnx", external="w.bin")),
        ["bench", "e.onnx"],
        "external weights",
    ),
    # 9: shapes and files that do not fit
    ("9-onnx-without-input", lambda w: no_input(w / "n.onnx"), ["bench", "n.onnx"], "found 0"),
    (
        "9-eval-three-outputs",
        lambda w: onnx_model(w / "t.onnx", outputs=3),
        ["eval", "r.toml", "--artifact", "t.onnx"],
        "3 graph outputs",
    ),
    (
        "9-eval-wrong-channels",
        lambda w: onnx_model(w / "c.onnx", (1, 3, 8, 8)),
        ["eval", "r.toml", "--artifact", "c.onnx"],
        "gives images of [1, 8, 8]",
    ),
    (
        "9-meta-checkpoint",
        saved("m.pt", lambda s: {k: torch.empty_like(v, device="meta") for k, v in s.items()}),
        check_with('model.checkpoint="m.pt"'),
        "meta tensor",
    ),
    ("9-export-rank-7-shape", None, ["export", "d.pt", "--input-shape", "1,8,8,8,8,8,8"], "--input-shape"),
    (
        "9-recipe-symlink-loop",
        lambda w: (os.symlink("l2.toml", w / "l1.toml"), os.symlink("l1.toml", w / "l2.toml")),
        ["check", "l1.toml"],
        "l1.toml: cannot resolve",
    ),
    ("9-set-100000-digits", None, check_with("train.epochs=" + "9" * 100_000), "--set train.epochs"),
    (
        "9-regress-deep-json",
        lambda w: deep_json(w / "deep.json"),
        ["regress", "deep.json", "--baseline", "deep.json"],
        "deep.json: ",
    ),
    # 10: file-mode bench of bad ONNX
    ("10-two-inputs", lambda w: onnx_model(w / "x.onnx", inputs=2), ["bench", "x.onnx"], "found 2"),
    ("10-custom-op", lambda w: onnx_model(w / "x.onnx", domain="my.ops"), ["bench", "x.onnx"], "custom operators"),
    ("10-opset-99", lambda w: onnx_model(w / "x.onnx", opset=99), ["bench", "x.onnx"], "opset 99"),
    ("10-zero-dim", lambda w: onnx_model(w / "x.onnx", (1, 0, 8, 8)), ["bench", "x.onnx"], "size 0 in dimension 1"),
    ("10-negative-dim", lambda w: onnx_model(w / "x.onnx", (1, -3, 8, 8)), ["bench", "x.onnx"], "size -3"),
    (
        "10-huge-dims",
        lambda w: onnx_model(w / "x.onnx", (1, 100000, 100000, 8)),
        ["bench", "x.onnx"],
        "check the sizes",
    ),
    ("10-int64-input", lambda w: onnx_model(w / "x.onnx", elem=TensorProto.INT64), ["bench", "x.onnx"], "holds INT64"),
    ("10-wrong-input-shape", None, ["bench", "d.onnx", "--input-shape", "1,8"], "--input-shape"),
    (
        "10-batch-too-big-for-memory",
        None,
        ["bench", "d.onnx", "--input-shape", "4096,4096,16", "--batch", "65536"],
        "--batch",
    ),
    # 11: numbers that would allocate terabytes, named by their own key
    ("11-lr-1e308", None, check_with("train.lr=1e308"), "train.lr: expected a value <= 10"),
    ("11-positions-int-max", None, check_with("prune.positions=2147483647"), "prune.positions"),
    (
        "11-capture-memory",
        None,
        check_with("prune.positions=60000", "prune.num_images=100000"),
        "prune.num_images x prune.positions",
    ),
    ("11-export-huge-shape", None, ["export", "d.pt", "--input-shape", "1,100000,100000"], "check the sizes"),
    # 13: check says what prune would
    (
        "13-check-wrong-head",
        saved("h.pt", lambda s: last_layer(s, 3)),
        check_with('model.checkpoint="h.pt"'),
        "set model.num_classes",
    ),
    (
        "13-check-stacked-prefix",
        saved("p.pt", lambda s: {f"module.backbone.{k}": v for k, v in s.items()}),
        check_with('model.checkpoint="p.pt"'),
        "model.key_map = { '^module\\.backbone\\.' = '' }",
    ),
    # 15: minor
    ("15-bench-threads-negative", None, ["bench", "d.onnx", "--threads", "-1"], "--threads: expected a value >= 0"),
    (
        "15-bool-weights",
        saved("b.pt", bool_first),
        check_with('model.checkpoint="b.pt"'),
        "expected floating-point weights",
    ),
]


def no_input(path: Path) -> Path:
    const = helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones(3, np.float32)))
    graph = helper.make_graph([const], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(("setup", "argv", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fault(
    setup: Callable[[Path], Any] | None, argv: list[str], named: str, work: Path, tmp_path: Path, cli
) -> None:
    if setup:
        setup(work)
    before = snapshot(tmp_path)
    result = cli(*argv)
    assert_one_clean_error(result, 2, named)
    assert "a cplitool bug" not in result.err, result.err  # "unexpected error" is reserved for real bugs
    assert snapshot(tmp_path) == before, "a refused command changed files"


def test_a_full_size_message_stays_one_line(work: Path, cli) -> None:
    """15: a 1 MB model.name is not echoed whole."""
    result = cli("check", "r.toml", "--set", 'model.name="' + "a" * 1_000_000 + '"')
    assert_one_clean_error(result, 2, "model.name")
    assert len(result.err) < 2000


def test_a_byte_order_mark_is_no_error(work: Path, cli) -> None:
    """15: a recipe saved with a UTF-8 BOM (Windows editors) reads as the same recipe."""
    (work / "bom.toml").write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    result = cli("check", "bom.toml")
    assert result.code == 0 and "valid" in result.out, result.err


def test_gate_outside_the_repo_refuses_before_any_work(work: Path, tmp_path: Path, cli) -> None:
    """14: the missing baseline is found before 13 s of pruning and exporting, and nothing is written."""
    before = tree(tmp_path)
    result = cli("gate")
    assert_one_clean_error(result, 2, "deploy/baselines/cpu.json: file not found")
    assert tree(tmp_path) == before


def test_atomic_rename_never_replaces_a_fifo(tmp_path: Path) -> None:
    """2: even past the CLI's checks, the atomic write refuses a non-regular target."""
    from cplitool.toolchain.errors import UsageError
    from cplitool.toolchain.io import write_json

    target = fifo(tmp_path / "out.json")
    with pytest.raises(UsageError, match="not a regular file"):
        write_json(target, {"a": 1})
    assert target.is_fifo() and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_force_replaces_a_foreign_file(work: Path, cli) -> None:
    """7: --force is the way to replace a file cplitool did not write."""
    from cplitool.toolchain.paths import check_overwrite

    notes = work / "notes.json"
    notes.write_text("notes")
    check_overwrite(notes, True, "--output")  # no refusal
    (work / "ours.json").write_text(json.dumps({"schema": "cplitool-bench/1"}))
    check_overwrite(work / "ours.json", False, "--output")  # cplitool's own file is merged into, as before


def test_bench_run_with_a_bad_batch_leaves_the_run_alone(work: Path, cli) -> None:
    """12: `bench runs/x --batch 100000` rewrote bench.json and the manifest, then failed."""
    run = work / "runs" / "x"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"schema": 1, "stages": {}}))
    (run / "bench.json").write_text(json.dumps({"schema": "cplitool-bench/1"}))
    before = snapshot(work)
    result = cli("bench", "runs/x", "--batch", "100000")
    assert_one_clean_error(result, 2, "--batch")
    assert snapshot(work) == before


# --- 3 and 12: interrupts and failures -------------------------------------------------------------
# Each command's stage is replaced by one that starts real work (recipe recorded, runs/latest moved),
# then gets the signal, as a Ctrl-C in the middle of training would.
STAGES = {
    "train": ("cplitool.toolchain.train.stage.train_dense", ["train", "r.toml"], "in train"),
    "prune": ("cplitool.toolchain.prune.stage.prune_stage", ["prune", "r.toml"], "in prune"),
    "export": ("cplitool.deploy.export.stage.export_stage", ["export", "r.toml"], "in export"),
    "bench": ("cplitool.deploy.bench.stage.bench_stage", ["bench", "r.toml"], "in bench"),
    "run": ("cplitool.toolchain.train.stage.train_dense", ["run", "r.toml"], "in stage train"),
}


def interrupting(signum: int, fail: bool = False) -> Callable[..., Any]:
    def stage(recipe: Any, *args: Any, **kwargs: Any) -> None:
        from cplitool.toolchain.errors import CplitoolError
        from cplitool.toolchain.rundir import RunDir

        RunDir.for_recipe(recipe if hasattr(recipe, "run_dir") else args[0])
        if fail:
            raise CplitoolError("disk full")
        os.kill(os.getpid(), signum)

    return stage


@pytest.fixture
def earlier_latest(work: Path) -> Path:
    """runs/latest pointing at another, finished run: a failed command must leave it there."""
    (work / "runs" / "earlier").mkdir(parents=True)
    os.symlink("earlier", work / "runs" / "latest")
    return work / "runs" / "latest"


@pytest.mark.parametrize("command", list(STAGES))
def test_ctrl_c_is_exit_130_naming_the_stage(
    command: str, work: Path, earlier_latest: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, argv, where = STAGES[command]
    monkeypatch.setattr(target, interrupting(signal.SIGINT))
    result = cli(*argv)
    assert result.code == 130, result.out + result.err
    assert f"interrupted (SIGINT) {where}" in result.err
    assert os.readlink(earlier_latest) == "earlier"  # not the interrupted run
    assert not list((work / "runs" / "fuzz").glob("**/.*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back


def test_a_failing_command_leaves_runs_latest(work: Path, earlier_latest: Path, cli, monkeypatch) -> None:
    monkeypatch.setattr("cplitool.toolchain.train.stage.train_dense", interrupting(signal.SIGINT, fail=True))
    result = cli("train", "r.toml")
    assert_one_clean_error(result, 1, "disk full")
    assert os.readlink(earlier_latest) == "earlier"


def test_a_failed_bench_json_run_exits_1(work: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """typer returns `typer.Exit(1)` outside standalone mode; it was dropped and bench --json exited 0."""
    monkeypatch.setattr("cplitool.deploy.bench.files.bench_files", lambda *a, **k: {"failed": [{"reason": "x"}]})
    assert cli("bench", "d.onnx", "--json").code == 1


SIGTERM_SCRIPT = """
import os, signal, sys
import cplitool.toolchain.train.stage as stage
from cplitool.toolchain.rundir import RunDir

def train_dense(recipe, **kwargs):
    RunDir.for_recipe(recipe)
    os.kill(os.getpid(), signal.SIGTERM)

stage.train_dense = train_dense
sys.argv = ["cplitool", *sys.argv[1:]]
from cplitool.cli.app import main
main()
"""


@pytest.mark.parametrize("command", ["train", "run"])
def test_sigterm_is_exit_143(command: str, work: Path, earlier_latest: Path) -> None:
    """A real SIGTERM in a separate process (it would end the test session on code without a handler)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = textwrap.dedent(SIGTERM_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-c", script, command, "r.toml"], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 143, done.stdout + done.stderr
    assert "interrupted (SIGTERM)" in done.stderr and "Traceback" not in done.stderr
    assert os.readlink(earlier_latest) == "earlier"


def test_onnx_runtime_writes_nothing_under_home(work: Path, tmp_path: Path) -> None:
    """ONNX Runtime's telemetry cache (~/.cache/Microsoft/DeveloperTools) is turned off by importing deploy."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    code = "import deploy, onnxruntime as ort; ort.InferenceSession('d.onnx')"
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], cwd=work, env=env, check=True, timeout=60)
    assert not list(home.rglob("*"))


def test_a_failed_run_leaves_no_run_directory_or_lock(work: Path, cli) -> None:
    """12: `run --set` pinned its recipe and recorded a manifest, then failed, leaving them and the .lock."""
    saved("h.pt", lambda s: last_layer(s, 3))(work)
    result = cli("run", "r.toml", "--set", 'model.checkpoint="h.pt"')
    assert result.code == 2 and "set model.num_classes" in result.err, result.err
    assert not (work / "runs").exists()


def test_an_interrupted_run_keeps_its_real_work(work: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only bookkeeping is cleared: a state file to resume from keeps the run directory."""

    def train(recipe: Any, **kwargs: Any) -> None:
        from cplitool.toolchain.rundir import RunDir

        RunDir.for_recipe(recipe).file("train.state.pt").write_bytes(b"state")
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr("cplitool.toolchain.train.stage.train_dense", train)
    assert cli("train", "r.toml").code == 130
    assert (work / "runs" / "fuzz" / "train.state.pt").is_file()
