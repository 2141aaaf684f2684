"""data.workers above the usable cores is clamped with one note, so torch's DataLoader warning never shows."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

from cplitool.toolchain.data import make_loader, registry
from cplitool.toolchain.data.registry import DataSplit


def test_workers_are_clamped_to_the_usable_cores_with_one_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry, "usable_cores", lambda: 2)
    monkeypatch.setattr(registry, "_clamp_noted", set())
    split = DataSplit(TensorDataset(torch.zeros(8, 1, 2, 2), torch.zeros(8, dtype=torch.long)), 2, (1, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "will create 4 worker processes" UserWarning would raise
        loaders = [make_loader(split, 4, shuffle=False, workers=4) for _ in range(2)]
        assert len(list(loaders[0])) == 2  # torch checks the worker count when iterating
    assert [loader.num_workers for loader in loaders] == [2, 2]
    assert capsys.readouterr().err.count("note: data.workers = 4 clamped to the 2 usable cores") == 1
    assert make_loader(split, 4, shuffle=False, workers=1).num_workers == 1
