"""CLI command modules of deploy/ (registered through toolchain.cli.app.COMMAND_MODULES)."""
