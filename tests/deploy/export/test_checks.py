"""Reading ONNX files: corrupt, truncated, empty or invalid files give a UsageError naming the file."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from cplitool.deploy.export.checks import load_checked, load_onnx
from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "quick_vgg.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), path)
    return path


def test_valid_file_loads_with_inferred_shapes(good_onnx: Path) -> None:
    model = load_checked(good_onnx)
    assert model.graph.value_info  # strict shape inference filled in the intermediate shapes


@pytest.mark.parametrize("cut", [0.5, 0.02])
def test_truncated_file_is_a_usage_error(good_onnx: Path, tmp_path: Path, cut: float) -> None:
    data = good_onnx.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(UsageError, match=r"truncated\.onnx: truncated or corrupt ONNX file"):
        load_onnx(bad)


def test_garbage_empty_and_missing_files(tmp_path: Path) -> None:
    garbage, empty = tmp_path / "garbage.onnx", tmp_path / "empty.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf" * 50)
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match=r"garbage\.onnx"):
        load_onnx(garbage)
    with pytest.raises(UsageError, match=r"empty\.onnx: empty file"):
        load_onnx(empty)
    with pytest.raises(UsageError, match=r"missing\.onnx: ONNX file not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_graph_that_fails_the_checker(tmp_path: Path) -> None:
    """A well-formed protobuf whose graph is wrong (Relu input never produced) fails onnx's full check."""
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "broken.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UsageError, match=r"broken\.onnx: invalid ONNX graph"):
        load_checked(path)
