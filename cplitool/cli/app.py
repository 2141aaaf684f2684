"""Build the Typer app and run it; a CplitoolError becomes one red line and its exit code, no traceback."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from cplitool.cli import (
    bench_cmds,
    doctor_cmds,
    export_cmds,
    gate_cmds,
    pipeline_cmds,
    prune_cmds,
    recipe_cmds,
    train_cmds,
)
from cplitool.toolchain import __version__, interrupts
from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.progress import console
from cplitool.toolchain.verbosity import set_verbose

# Each module defines `register(app)`, imported directly, so a missing command module fails on import, not
# when its command runs; the modules reach torch, TensorRT and ONNX Runtime only when a command runs.
COMMAND_MODULES = (
    recipe_cmds,
    train_cmds,
    prune_cmds,
    pipeline_cmds,
    bench_cmds,
    gate_cmds,
    export_cmds,
    doctor_cmds,
)

app = typer.Typer(
    name="cplitool",
    help="CPLI channel pruning, checked export and latency benchmarking for CNNs, driven by TOML recipes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich panels print a type such as <bool> beside every flag, even --help.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cplitool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="print the details behind each summary line (parity statistics)")
    ] = False,
) -> None:
    """The app's help text is Typer's `help` above; this callback adds --version and --verbose."""
    set_verbose(verbose)


for _module in COMMAND_MODULES:
    _module.register(app)


MAX_LINE = 600  # an error line quoting a value the user gave (a 1 MB model.name) is cut in the middle


def shorten(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[: MAX_LINE // 2]}...({len(line) - MAX_LINE:,} characters left out)...{line[-MAX_LINE // 3 :]}"


def fail(message: str, code: int) -> None:
    text = "\n".join(shorten(line) for line in message.splitlines())
    console.print(f"[red]error:[/red] {escape(text)}", highlight=False)
    sys.exit(code)


def main() -> None:
    """Run one command; a failure (an error, Ctrl-C, SIGTERM) puts runs/latest back as it was."""
    from cplitool.toolchain.rundir import release_all, restore_latest

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "cplitool")
    ok = False
    try:
        with interrupts.handled(), interrupts.stage(command):
            run_app()
        ok = True
    except SystemExit as e:
        ok = e.code in (0, None)
        raise
    finally:
        if not ok:
            restore_latest()
        release_all(failed=not ok)


def run_app() -> None:
    from cplitool.toolchain import warning_notes

    warning_notes.install()
    try:
        code = app(standalone_mode=False)
    except CplitoolError as e:
        fail(str(e), e.exit_code)
    except MemoryError:
        fail("out of memory: reduce data.batch_size, data.eval_batch_size or the model's size", 1)
    except interrupts.Interrupted as e:
        interrupted(str(e), e.exit_code)
    except KeyboardInterrupt:  # raised by code that bypasses the handlers (signal.default_int_handler)
        interrupted(f"interrupted in {interrupts.current_stage()}", 130)
    except Exception as e:
        # Typer's own usage errors and exits (typer >= 0.20 vendors click, older releases raise click's
        # classes): recognised by their interface, so both work.
        code = getattr(e, "exit_code", None)
        if not isinstance(code, int):
            if type(e).__name__ == "Abort":
                sys.exit(130)
            unexpected(e)
        show = getattr(e, "show", None)
        if callable(show):
            show()
        sys.exit(code)
    # Outside standalone mode typer returns a `typer.Exit(n)` (and a Ctrl-C it caught, as 130) instead of
    # raising it: the code must still become the exit status.
    if code == 130:
        interrupted(f"interrupted in {interrupts.current_stage()}", 130)
    if isinstance(code, int) and code:
        sys.exit(code)


def interrupted(what: str, code: int) -> None:
    console.print(
        f"[yellow]{escape(what)}[/yellow]: finished artifacts and the manifest are intact, runs/latest is "
        "unchanged; run the command again to resume",
        highlight=False,
    )
    sys.exit(code)


def unexpected(e: Exception) -> None:
    """A failure no check foresaw: one line (exit 1), the traceback only with CPLITOOL_TRACEBACK=1.
    Out-of-memory and OS errors are the environment's; anything else is a cplitool bug to report."""
    if os.environ.get("CPLITOOL_TRACEBACK"):
        raise e
    line = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        fail(f"{where}{e.strerror or line}", 1)
    if "out of memory" in line.lower() or "can't allocate memory" in line.lower():
        fail(f"out of memory ({line}): reduce data.batch_size, data.eval_batch_size or the model's size", 1)
    fail(
        f"unexpected {type(e).__name__}: {line} (a cplitool bug: please report it; CPLITOOL_TRACEBACK=1 shows where)", 1
    )


if __name__ == "__main__":
    main()
