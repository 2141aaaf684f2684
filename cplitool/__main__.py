"""`python -m cplitool` runs the command line, as the `cplitool` script does."""

from toolchain.cli.app import main

main()
