"""cplitool.prune: the Python entry to the same plan and pruner as `cplitool prune`."""

from __future__ import annotations

import pytest
import torch

import cplitool
from cplitool.pruning import sampling_batches
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model
from cplitool.toolchain.recipe.sections import PruneSection


def batches(n: int, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def test_l1_needs_no_data_and_leaves_the_model_alone() -> None:
    model = create_model("quick_vgg", 10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, report = cplitool.prune(model, macs_keep=0.5, method="l1", input_shape=(1, 8, 8))
    assert abs(report.macs_keep - 0.5) <= 0.02 * 0.5 + 1e-9
    assert report.params_after < report.params_before
    assert pruned(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's module is untouched
    assert "l1: MACs" in str(report) and report.to_dict()["macs_keep"] == report.macs_keep


def test_cpli_reconstructs_from_the_loader_and_takes_its_shape() -> None:
    model = create_model("quick_vgg", 10).eval()
    pruned, report = cplitool.prune(model, batches(4), macs_keep=0.5, num_images=48, positions=4)
    stages = [row for row in report.layers if "err_after" in row]
    assert stages and all(row["err_after"] <= row["err_before"] + 1e-9 for row in stages)
    assert report.input_shape == (1, 8, 8) and report.method == "cpli"
    assert pruned(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert 50 < report.peak_memory_mib["process_rss"] < 64 * 1024  # MiB: torch alone needs more than 50


def test_sampling_takes_exactly_num_images() -> None:
    """Breaks caught: ignoring num_images (reads the whole loader) or dropping the partial last batch."""
    cfg = PruneSection(num_images=40)
    taken = sampling_batches(batches(5), cfg)
    assert sum(len(x) for x, _ in taken) == 40 and len(taken) == 3
    assert sampling_batches(None, PruneSection(method="random")) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "cpli"}, "pass a loader"),
        ({"method": "l1", "round_too": 4}, r"prune\.round_too: unknown key \(did you mean 'round_to'\?\)"),
        ({"method": "l1", "macs_keep": 1.5}, r"prune\.macs_keep: expected a value <= 1\.0"),
        ({"method": "l1"}, "pass example_input"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cplitool.prune(create_model("quick_vgg", 10), **kwargs)


def test_loader_of_bare_tensors_is_refused() -> None:
    with pytest.raises(UsageError, match=r"\(images, labels\) batches"):
        cplitool.prune(create_model("quick_vgg", 10), [torch.randn(4, 1, 8, 8)], num_images=4)
