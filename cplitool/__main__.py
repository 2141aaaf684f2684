"""`python -m cplitool` runs the command line, as the `cplitool` script does."""

from cplitool.cli.app import main

main()
