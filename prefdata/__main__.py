"""`python -m prefdata` runs the `prefdata` command."""

from prefdata.cli import main

main()
