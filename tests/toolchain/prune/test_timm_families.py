"""timm CNN families with random weights prune to half their MACs with scope "all" and export with parity, or
are refused in one line (a UsageError); a refusal that names a prune.skip list prunes with it.

The first families were users' crash reports (issue 21): GhostNet, CSPResNet, MixNet, DPN, Res2Net, ReXNet."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
import torch

import cplitool
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.errors import UsageError

timm = pytest.importorskip("timm", reason="timm is a test dependency (pip install -e '.[dev]')")

SHAPE = (3, 64, 64)
TARGET = 0.5
SECONDS = 120.0  # each family prunes or is refused within this (issue 21), skip retry included
FAST = ["mobilenetv3_small_050"]
FAMILIES = [
    # the crash reports
    "ghostnet_100",
    "cspresnet50",
    "mixnet_s",
    "dpn68",
    "res2net50_14w_8s",
    "rexnet_100",
    # and more that users bring
    "resnet18d",
    "seresnext26d_32x4d",
    "efficientnet_b0",
    "mobilenetv2_100",
    "regnetx_002",
    "regnety_002",
    "densenet121",
    "dla34",
    "cspdarknet53",
    "ese_vovnet19b_dw",
    "selecsls42b",
    "hardcorenas_a",
    "fbnetc_100",
    "mnasnet_100",
    "lcnet_050",
    "resnest14d",
    "gernet_s",
    "repvgg_a0",
    "tinynet_e",
    "semnasnet_075",
    "hrnet_w18_small",
    "convnext_atto",
]
SKIP_LIST = re.compile(r"prune\.skip = (\[.*?\])")


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in FAMILIES])
def test_timm_family_prunes_or_is_refused(name: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    outcome, pruned = None, None
    options: dict[str, object] = {}
    for attempt in range(2):
        try:
            pruned, report = cplitool.prune(
                model, method="l1", scope="all", macs_keep=TARGET, input_shape=SHAPE, **options
            )
            outcome = "pruned"
            break
        except UsageError as e:
            message = str(e)
            assert "\n" not in message, message
            found = SKIP_LIST.search(message) if "cannot be pruned" in message else None
            assert not (attempt and found), f"{name}: the named prune.skip was not enough: {message}"
            if found is None:
                assert attempt == 0 or "cannot be met" in message or "closest plan" in message, message
                outcome = "refused"
                break
            options = {"skip": ast.literal_eval(found.group(1))}
    if outcome == "pruned":
        assert pruned is not None
        achieved = count_model(pruned, SHAPE).macs / count_model(model, SHAPE).macs
        assert abs(achieved - TARGET) <= 0.02 * TARGET, f"{name}: keeps {achieved:.3f} of the MACs"
        assert report.macs_keep == pytest.approx(achieved, rel=0.02), f"{name}: the plan's MACs estimate is off"
        result = cplitool.export(pruned, tmp_path / "m.onnx", input_shape=SHAPE)
        assert result.passed
    assert outcome is not None
    assert time.perf_counter() - start < SECONDS, f"{name}: {outcome} after {time.perf_counter() - start:.0f} s"
