"""The quickstart as a newcomer sees it (issue 22's "done when"): `cplitool run recipes/quickstart.toml` at
COLUMNS=80 prints no line over 100 characters, at most one line of GPU advice on a host without a GPU, and a
final table with a cost before fine-tuning, its recovery and l1 beside CPLI. Slow: the whole quickstart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(1500)  # about a minute on a quiet 2-core machine; over 10 at load 13
def test_quickstart_output_fits_and_teaches(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    command = [sys.executable, "-m", "cplitool.cli.app", "run", str(REPO / "recipes" / "quickstart.toml")]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1400, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    too_long = [line for line in lines if len(line) > 100]
    assert too_long == []
    gpu = [line for line in lines if "GPU" in line or "cuda" in line.lower()]
    assert len(gpu) <= 1, gpu
    assert not any("Warning" in line for line in lines)  # no raw library warning
    manifest = json.loads((tmp_path / "runs" / "quickstart" / "manifest.json").read_text())
    prune, finetune = manifest["stages"]["prune"]["metrics"], manifest["stages"]["finetune"]["metrics"]
    assert prune["top1_before_finetune"] < prune["dense_top1"]  # a cost before fine-tuning
    assert finetune["best"]["top1"] > prune["top1_before_finetune"]  # and a recovery after
    (l1,) = prune["compare"]
    assert l1["method"] == "l1" and l1["top1"] < prune["top1_before_finetune"] - 20
