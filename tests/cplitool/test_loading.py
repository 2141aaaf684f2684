"""cplitool.load: artifacts rebuild themselves; a pruned state_dict reloads into a fresh dense module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cplitool
from cplitool.toolchain.artifacts import ModelInfo, save_artifact
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    model, _ = cplitool.prune(create_model("quick_vgg", 10), method="l1", macs_keep=0.5, input_shape=(1, 8, 8))
    return model


def test_state_dict_reloads_at_pruned_widths(tmp_path: Path, pruned: torch.nn.Module) -> None:
    """Break caught: loading without resizing to the saved widths (a shape mismatch)."""
    torch.save(pruned.state_dict(), tmp_path / "p.pt")
    template = create_model("quick_vgg", 10)
    widths = [m.out_channels for m in template.modules() if isinstance(m, torch.nn.Conv2d)]
    loaded = cplitool.load(tmp_path / "p.pt", model=template)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert widths == [m.out_channels for m in template.modules() if isinstance(m, torch.nn.Conv2d)]  # untouched


def test_a_training_checkpoint_layout_loads_too(tmp_path: Path, pruned: torch.nn.Module) -> None:
    """Nested under "state_dict" with DataParallel's "module." prefix, as training scripts save them."""
    nested = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in pruned.state_dict().items()}}
    torch.save(nested, tmp_path / "ckpt.pth")
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(cplitool.load(tmp_path / "ckpt.pth", model=create_model("quick_vgg", 10))(x), pruned(x))


def test_artifact_needs_no_template(tmp_path: Path, pruned: torch.nn.Module) -> None:
    path = save_artifact(tmp_path / "a.pt", pruned, ModelInfo("quick_vgg", 10))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(cplitool.load(path)(x), pruned(x))


def test_errors(tmp_path: Path, pruned: torch.nn.Module) -> None:
    with pytest.raises(UsageError, match="file not found"):
        cplitool.load(tmp_path / "missing.pt")
    torch.save(pruned.state_dict(), tmp_path / "p.pt")
    with pytest.raises(UsageError, match=r"pass the architecture too, cplitool\.load\(path, model=MyNet\(\)\)"):
        cplitool.load(tmp_path / "p.pt")
