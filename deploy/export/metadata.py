"""Key/value metadata inside an ONNX file (metadata_props): provenance that travels with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from cplitool.deploy.export.checks import load_onnx
from cplitool.toolchain.io import atomic_write


def write_metadata(path: str | Path, props: dict[str, Any]) -> None:
    """Set `props` (values stringified) in the file's metadata_props, replacing earlier values of the same keys."""
    model = load_onnx(path)
    current = {p.key: p.value for p in model.metadata_props}
    current.update({k: str(v) for k, v in props.items()})
    del model.metadata_props[:]
    for key, value in current.items():
        model.metadata_props.add(key=key, value=value)
    atomic_write(path, lambda p: onnx.save(model, str(p)))


def read_metadata(path: str | Path) -> dict[str, str]:
    return {p.key: p.value for p in load_onnx(path).metadata_props}
