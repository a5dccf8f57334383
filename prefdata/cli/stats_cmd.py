"""`prefdata stats`: thin click layer over `prefdata.jobs.stats.write_data_card`."""

from __future__ import annotations

import click

from prefdata.cli.options import from_signature, quiet_option
from prefdata.jobs import stats


@click.command("stats")
@click.argument("directory", type=click.Path(file_okay=False))
@from_signature(stats.write_data_card, "tokenizer", type=click.Path(),
                help="Tokenizer directory or tokenizer.json: adds token lengths to the card.")
@quiet_option
def stats_command(directory, tokenizer, quiet) -> None:
    """Write the data card DIR/README.md (counts, lengths, histograms) and print a short table."""
    card = stats.write_data_card(directory, tokenizer=tokenizer)
    if not quiet:
        click.echo(stats.terminal_table(card))
    click.echo(f"data card written to {card['card']} with {len(card['images'])} histogram(s)")
