"""cplitool's Python API: prune a PyTorch model, export it to checked ONNX, benchmark it, load artifacts.

    import cplitool
    pruned, report = cplitool.prune(model, train_loader, macs_keep=0.5, method="cpli")
    result = cplitool.export(pruned, "pruned.onnx", example_input=x)
    print(cplitool.bench(model, pruned, example_input=x, batch=64).table())

A thin layer over `toolchain` (pruning) and `deploy` (export, runners, timing), which stay the implementation
behind the `cplitool` command; see docs/python-api.md. The API names load on first use (PEP 562), so importing
the command line, which lives in this package too, does not import torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "toolchain" / "__init__.py").is_file():
    # A source checkout on sys.path but not installed (an offline GPU host's system python): toolchain/ and
    # deploy/ sit beside this folder, so they become cplitool.toolchain and cplitool.deploy from here too.
    __path__.append(str(_CHECKOUT))

from cplitool.toolchain import __version__  # noqa: E402

if TYPE_CHECKING:
    from cplitool.benchmarking import BenchResult, bench
    from cplitool.exporting import ExportResult, export
    from cplitool.loading import load
    from cplitool.pruning import PruneReport, prune

_HOMES = {
    "BenchResult": "cplitool.benchmarking",
    "bench": "cplitool.benchmarking",
    "ExportResult": "cplitool.exporting",
    "export": "cplitool.exporting",
    "load": "cplitool.loading",
    "PruneReport": "cplitool.pruning",
    "prune": "cplitool.pruning",
}

__all__ = ["BenchResult", "ExportResult", "PruneReport", "__version__", "bench", "export", "load", "prune"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cplitool' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
