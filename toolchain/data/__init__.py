"""Data sets by name (registry.py) and the loaders every stage uses."""

from cplitool.toolchain.data.registry import DataSplit, build_split, list_datasets, make_loader

__all__ = ["DataSplit", "build_split", "list_datasets", "make_loader"]
