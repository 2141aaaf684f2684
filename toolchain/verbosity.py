"""Whether the user asked for details (`cplitool --verbose` or CPLITOOL_VERBOSE=1): summaries stay under
100 characters by default, and the statistics behind them are printed only on request (they are always in
the JSON files). An environment variable, so torchrun's worker processes see it too."""

from __future__ import annotations

import os

ENV = "CPLITOOL_VERBOSE"


def verbose() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    if on:
        os.environ[ENV] = "1"
