"""One module per CLI verb; shared option decorators below."""

from __future__ import annotations

import click

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational lines.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace OUT if it is an existing prefdata directory.")
on_error_option = click.option(
    "--on-error",
    type=click.Choice(["quarantine", "fail"]),
    default="quarantine",
    show_default=True,
    help="A bad record goes to quarantine.jsonl, or stops the run.",
)
