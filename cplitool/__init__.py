"""cplitool's Python API: prune a PyTorch model, export it to checked ONNX, benchmark it, load artifacts.

    import cplitool
    pruned, report = cplitool.prune(model, train_loader, macs_keep=0.5, method="cpli")
    result = cplitool.export(pruned, "pruned.onnx", example_input=x)
    print(cplitool.bench(model, pruned, example_input=x, batch=64).table())

A thin layer over `toolchain` (pruning) and `deploy` (export, runners, timing), which stay the implementation
behind the `cplitool` command; see docs/python-api.md.
"""

from __future__ import annotations

from cplitool.benchmarking import BenchResult, bench
from cplitool.exporting import ExportResult, export
from cplitool.loading import load
from cplitool.pruning import PruneReport, prune
from toolchain import __version__

__all__ = ["BenchResult", "ExportResult", "PruneReport", "__version__", "bench", "export", "load", "prune"]
