"""`python -m prefdata.cli` runs the `prefdata` command."""

from prefdata.cli import main

main()
