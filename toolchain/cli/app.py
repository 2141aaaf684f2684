"""Build the Typer app and run it; a CplitoolError becomes one red line and its exit code, no traceback."""

from __future__ import annotations

import importlib
import sys

import typer

from toolchain.errors import CplitoolError
from toolchain.progress import console

# Each module defines `register(app)`; deploy's modules reach TensorRT/ONNX Runtime only when a command runs.
COMMAND_MODULES = (
    "toolchain.cli.recipe_cmds",
    "toolchain.cli.train_cmds",
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
        console.print(f"[red]error:[/red] {e}", highlight=False, markup=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/yellow]: finished artifacts and the manifest are intact; run the command again to resume"
        )
        sys.exit(130)
    except Exception as e:  # click's own usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
