"""Coupled channel groups (scope = "all") on small nets with one kind of coupling each: the roles found,
exact removal (pruned == masked dense), the report's errors, the data-free fallback and refusals."""

from __future__ import annotations

import pytest
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.prune import group_pruner
from cplitool.toolchain.prune.dependency import graph
from cplitool.toolchain.prune.group_pruner import L1_PRODUCERS
from cplitool.toolchain.prune.groups import find_groups
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.group_checks import assert_equals_masked, batches, prune_all, real_errors
from tests.toolchain.prune.nets import randomised

SHAPE = (3, 8, 8)


def groups_of(name: str) -> dict[str, object]:
    model = randomised(name)
    return {g.root: g for g in find_groups(model, graph(model, SHAPE), 8)}


def test_roles_residual_concat_depthwise_se_grouped() -> None:
    stream = groups_of("residual")["stem.0"]
    assert {m.name for m in stream.producers} == {"stem.0", "block.3"}  # type: ignore[attr-defined]
    assert {m.name for m in stream.consumers} == {"block.0", "head.0"}  # type: ignore[attr-defined]
    concat = groups_of("concat")
    reader = {g: next(m for m in concat[g].consumers) for g in ("a", "b")}  # type: ignore[attr-defined]
    assert reader["a"].idxs == list(range(16)) and reader["b"].idxs == list(range(16, 40))  # channel offsets
    inverted = groups_of("inverted")["expand.0"]
    assert {m.name for m in inverted.consumers} == {"se.fc1", "project.0"}  # type: ignore[attr-defined]
    assert {m.name for m in inverted.producers} == {"expand.0", "se.fc2"}  # type: ignore[attr-defined]
    assert any(m.depthwise and m.name == "dw.0" for m in inverted.members)  # type: ignore[attr-defined]
    grouped = groups_of("grouped")
    assert grouped["a.0"].tie_size() == 4 and grouped["a.0"].step % 4 == 0  # type: ignore[attr-defined]
    assert not grouped["a.0"].reconstructable and grouped["b.0"].reconstructable  # type: ignore[attr-defined]
    refused = groups_of("channels_last")["a"]
    assert "normalises across channels" in refused.refused  # type: ignore[attr-defined]
    assert groups_of("channels_last")["up"].refused is None


@pytest.mark.parametrize("method", ["l1", "random", "cp", "cpli"])
@pytest.mark.parametrize("name", ["residual", "concat", "inverted", "grouped", "channels_last"])
def test_pruned_equals_masked_dense_and_meets_the_target(name: str, method: str) -> None:
    """Catches wrong member indices (concat offsets, grouped-conv positions), a mask that differs from the
    surgery, and a MACs model that differs from the counted MACs."""
    cfg = PruneSection(scope="all", method=method, macs_keep=0.5, round_to=2, positions=4)
    data = batches(SHAPE)
    p = prune_all(randomised(name), SHAPE, cfg, data)
    assert abs(p.plan.macs_keep - 0.5) <= 0.02 * 0.5
    assert any(r.kept < r.channels for r in p.reports)
    assert_equals_masked(p, SHAPE)


@pytest.mark.parametrize("name", ["residual", "concat", "grouped", "channels_last"])
def test_report_error_is_the_real_error_of_the_last_group(name: str) -> None:
    """The last group's consumers are final once it is chosen: the report's err_after is the error the
    pruned network really makes there. Catches a refit written to the wrong columns and a wrong error."""
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    data = batches(SHAPE)
    p = prune_all(randomised(name), SHAPE, cfg, data)
    last = next(r for r in reversed(p.reports) if r.consumers)
    real = real_errors(p, cfg, data, [c.name for c in last.consumers])
    for c in last.consumers:
        assert c.err_after <= c.err_before
        assert real[c.name] == pytest.approx(c.err_after, rel=1e-3, abs=1e-6), c.name


def test_groups_without_a_dense_reader_use_a_named_data_free_criterion() -> None:
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    p = prune_all(randomised("grouped"), SHAPE, cfg, batches(SHAPE))
    by_root = {r.root: r for r in p.reports}
    assert by_root["a.0"].criterion == L1_PRODUCERS and "grouped convs" in by_root["a.0"].why
    assert by_root["b.0"].criterion == "lasso" and not by_root["b.0"].why


def test_a_consumer_too_large_to_reconstruct_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like torchvision VGG's classifier.0 (25088 inputs: a 4.7 GiB Gram): named in the report, not an OOM."""
    monkeypatch.setattr(group_pruner, "MAX_GRAM_COLUMNS", 100)  # block.0 reads 16 * 9 = 144 values a row
    cfg = PruneSection(scope="all", method="cpli", macs_keep=0.5, round_to=2, positions=4)
    p = prune_all(randomised("residual"), SHAPE, cfg, batches(SHAPE))
    stream = next(r for r in p.reports if r.root == "stem.0")
    assert stream.criterion == L1_PRODUCERS and "block.0 reads 144 values per output row" in stream.why
    assert not stream.consumers  # nothing refitted
    assert_equals_masked(p, SHAPE)


def test_refusal_names_the_group_in_the_way() -> None:
    with pytest.raises(UsageError, match=r"cannot be met.*group 'a' \(.*normalises across channels"):
        make_plan(randomised("channels_last"), SHAPE, PruneSection(scope="all", macs_keep=0.1, round_to=4))


def test_a_script_prunes_a_plain_module_with_a_dataloader() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from cplitool.toolchain.prune.pruner import prune

    data = batches(SHAPE, n=1, size=32)[0]
    loader = DataLoader(TensorDataset(*data), batch_size=16)
    model = randomised("inverted")
    plan, result = prune(model, SHAPE, PruneSection(scope="all", method="cp", macs_keep=0.5, round_to=2), loader)
    assert result.model is model and result.groups and abs(plan.macs_keep - 0.5) <= 0.01
    assert model(data[0]).shape == (32, 10)


def test_a_pruned_depthwise_model_reloads_from_its_state_dict() -> None:
    """Catches rebuilding a pruned depthwise conv with its dense group count."""
    from cplitool.toolchain.artifacts import fit_to_state_dict

    cfg = PruneSection(scope="all", method="l1", macs_keep=0.5, round_to=2)
    p = prune_all(randomised("inverted"), SHAPE, cfg, [])
    fresh = fit_to_state_dict(randomised("inverted"), p.pruned.state_dict())
    fresh.load_state_dict(p.pruned.state_dict())
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), p.pruned(x))
