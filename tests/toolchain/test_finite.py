"""NaN and infinite weights or outputs are refused, naming the first such tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cplitool.toolchain.finite import NonFiniteError, require_finite_output, require_finite_weights


def test_nan_weight_is_named() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    require_finite_weights(model, "dense")  # finite: nothing raised
    with torch.no_grad():
        model[1].running_var[0] = float("inf")
        model[0].bias[1] = float("nan")
    with pytest.raises(
        NonFiniteError, match=r"dense: weights are not finite: '0.bias' holds 1 NaN and 0 infinite of 2"
    ):
        require_finite_weights(model, "dense")


def test_non_finite_output_is_named() -> None:
    require_finite_output(np.zeros((2, 3), np.float32), "logits", "x.onnx")
    with pytest.raises(NonFiniteError, match=r"x.onnx: output 'logits' holds 0 NaN and 1 infinite of 6"):
        require_finite_output(np.array([[0, 1, np.inf], [0, 0, 0]], np.float32), "logits", "x.onnx")


def test_eval_refuses_a_nan_model(in_tmp) -> None:  # type: ignore[no-untyped-def]
    """NaN logits arg-max to class 0, which would score as a real accuracy (~10%): eval refuses instead."""
    from cplitool.toolchain.models import create_model
    from cplitool.toolchain.recipe import load_recipe
    from cplitool.toolchain.train.stage import evaluate_model
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", {"run": {"dir": str(in_tmp / "run")}})
    model = create_model("quick_vgg", 10)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"nan.pt \(nan.pt\): weights are not finite"):
        evaluate_model(recipe, "nan.pt", model)
