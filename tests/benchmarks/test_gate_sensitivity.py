"""The sensitivity check's slower model: more MACs, identical outputs; and (slow) the gate catching it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cplitool.toolchain.counting import count_model
from cplitool.toolchain.models import create_model
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gate_sensitivity.py"
SHAPE = (3, 32, 32)


def narrow_and_wide() -> tuple[nn.Module, nn.Module]:
    """A 'pruned' VGG-16 at a quarter width with non-trivial BatchNorm, and its 'dense' model at half width."""
    torch.manual_seed(0)
    pruned = create_model("vgg16_cifar", 10, width=0.25).eval()
    for m in pruned.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight, m.bias, m.running_mean):
                nn.init.uniform_(t, 0.2, 1.0)
            nn.init.uniform_(m.running_var, 0.5, 2.0)
    return pruned, create_model("vgg16_cifar", 10, width=0.5).eval()


def test_zero_padding_adds_macs_and_zero_channels_only() -> None:
    """Catches padded filters left as initialised (outputs change, padded channels not zero after their ReLU)
    and pruned weights or BatchNorm statistics not copied across."""
    gs = load_script(SCRIPT)
    pruned, dense = narrow_and_wide()
    wide = gs.zero_padded(pruned, gs.conv_widths(dense))
    assert count_model(wide, SHAPE).macs > 3 * count_model(pruned, SHAPE).macs
    x = torch.randn(4, *SHAPE)
    acts: list[tuple[int, torch.Tensor]] = []
    kept = [m.num_features for m in pruned.features if isinstance(m, nn.BatchNorm2d)]
    relus = [m for m in wide.features if isinstance(m, nn.ReLU)]
    hooks = [
        r.register_forward_hook(lambda _m, _i, o, n=n: acts.append((n, o.detach().clone())))
        for r, n in zip(relus, kept, strict=True)
    ]
    with torch.no_grad():
        assert torch.allclose(wide(x), pruned(x), atol=1e-5)
    for h in hooks:
        h.remove()
    assert len(acts) == 13
    for n, a in acts:
        assert a[:, n:].abs().max() == 0 and a[:, :n].abs().max() > 0


def test_slower_lands_on_the_extra_macs() -> None:
    """Catches a bisection that returns the side below the target, and widths off cplitool's multiples of 8."""
    gs = load_script(SCRIPT)
    pruned, dense = narrow_and_wide()
    base = count_model(pruned, SHAPE).macs
    slower = gs.slower(pruned, dense, 0.15, SHAPE)
    macs = count_model(slower, SHAPE).macs
    assert 1.15 * base <= macs <= 1.20 * base  # above the target by less than one 8-channel step of this small net
    assert all(w == "M" or w % 8 == 0 for w in gs.conv_widths(slower))


@pytest.mark.slow
def test_gate_catches_the_slower_model_and_passes_the_good_one(in_tmp: Path) -> None:
    """The real pair and baseline: the 15%-MACs-slower pruned model regresses, the good pair does not."""
    from cplitool.deploy.gate.measure import measure_pair
    from cplitool.deploy.gate.pair import prepare_pair
    from cplitool.deploy.gate.run import GATE, run_gate
    from cplitool.deploy.regress import load_doc

    gs = load_script(SCRIPT)
    baseline = load_doc(SCRIPT.parents[1] / "deploy" / "baselines" / "cpu.json")
    good, _ = prepare_pair(GATE.spec, in_tmp / "pairs")
    slow = gs.slow_pair(GATE.spec, 0.15, in_tmp / "slow")
    names = ("bench.json", "cpu.json")
    assert run_gate(lambda: measure_pair(good, GATE.timing), baseline, None, names).passed
    assert not run_gate(lambda: measure_pair(slow, GATE.timing), baseline, None, names).passed
