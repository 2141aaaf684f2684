"""Build the Typer app and run it; a CplitoolError becomes one red line and its exit code, no traceback."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.markup import escape

from toolchain.errors import CplitoolError
from toolchain.progress import console

# Each module defines `register(app)`; deploy's modules reach TensorRT/ONNX Runtime only when a command runs.
COMMAND_MODULES = (
    "toolchain.cli.recipe_cmds",
    "toolchain.cli.train_cmds",
    "toolchain.cli.prune_cmds",
    "toolchain.cli.pipeline_cmds",
    "deploy.cli.bench_cmds",
    "deploy.cli.export_cmds",
    "deploy.cli.doctor_cmds",
)

app = typer.Typer(
    name="cplitool",
    help="CPLI channel pruning, checked export and latency benchmarking for CNNs, driven by TOML recipes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except CplitoolError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/yellow]: finished artifacts and the manifest are intact; run the command again to resume"
        )
        sys.exit(130)
    except Exception as e:
        # Typer's own usage errors and exits (typer >= 0.20 vendors click, older releases raise click's
        # classes): recognised by their interface, so both work.
        code = getattr(e, "exit_code", None)
        if not isinstance(code, int):
            if type(e).__name__ == "Abort":
                sys.exit(130)
            raise
        show = getattr(e, "show", None)
        if callable(show):
            show()
        sys.exit(code)


if __name__ == "__main__":
    main()
