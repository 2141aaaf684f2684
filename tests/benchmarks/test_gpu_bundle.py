"""`make gpu-bundle` and gpu_check.py on a host that lacks torch_pruning and onnxslim: a child Python where
an import blocker hides them from the .venv gets them from the bundle and benches dense against pruned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
HIDDEN = ("torch_pruning", "onnxslim")
# sitecustomize for the child: the hidden packages import only from a wheel on sys.path, as on the GPU host
BLOCKER = f"""
import importlib.machinery, sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in {HIDDEN!r} or path is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p.endswith(".whl")])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden from the venv)", name=name)
        return spec

sys.meta_path.insert(0, Blocker())
"""


def bundle_like_make(out: Path) -> Path:
    """The real gpu-bundle/ when `make gpu-bundle` made one; else the same kind of zip, offline, from the
    installed packages' files (what a pure-Python wheel holds)."""
    real = REPO / "gpu-bundle"
    if all(list(real.glob(f"{h}-*.whl")) for h in HIDDEN):
        return real
    for name in HIDDEN:
        dist = distribution(name)
        with zipfile.ZipFile(out / f"{name}-{dist.version}-py3-none-any.whl", "w") as z:
            for f in dist.files or []:
                if f.parts[0] == name and f.suffix != ".pyc":
                    z.write(dist.locate_file(f), str(f))
    return out


def child_env(tmp: Path) -> dict[str, str]:
    (tmp / "blocker").mkdir()
    (tmp / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp / "blocker"), str(REPO)])}


def test_the_blocker_hides_the_packages(tmp_path: Path) -> None:
    """Without it the test below proves nothing: the child must not import them from the venv."""
    env = child_env(tmp_path)
    for name in HIDDEN:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], env=env, capture_output=True, text=True)
        assert proc.returncode != 0 and "hidden from the venv" in proc.stderr


@pytest.mark.timeout(900)
def test_dry_run_gets_rows_with_the_packages_only_in_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    bundle = bundle_like_make(bundle)
    env = child_env(tmp_path)
    cmd = [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path / "out"), "--bundle", str(bundle)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "out" / "gpu_check_dryrun.json").read_text())
    assert {w.split("-")[0] for w in doc["bundle"]} >= set(HIDDEN)
    assert doc["failed"] == [] and doc["tests"]["status"] == "ok"
    assert {c["arch"] for c in doc["comparisons"]} == {"quick_vgg", "resnet20"}
    assert all("cplitool prune" in m["source"] for m in doc["measurements"] if m["model"] == "pruned")


def test_budget_and_a_filename_safe_results_name(tmp_path: Path) -> None:
    gpu_check = load_script(SCRIPT)
    assert gpu_check.safe_name("gpu node/7: a100") == "gpu_node_7_a100"
    assert gpu_check.safe_name("") == "host"
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--budget", "0", "--out", str(tmp_path)])
