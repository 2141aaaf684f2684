"""The `cplitool` command line: app.py builds the Typer app from the command modules listed there."""
