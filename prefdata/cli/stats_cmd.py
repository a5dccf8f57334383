"""`prefdata stats`: thin click layer over `prefdata.jobs.stats.write_data_card`."""

from __future__ import annotations

import click

from prefdata.cli.options import quiet_option


@click.command("stats")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--tokenizer", default=None, type=click.Path(),
              help="Tokenizer directory or tokenizer.json: adds token lengths to the card.")
@quiet_option
def stats_command(directory, tokenizer, quiet) -> None:
    """Write the data card DIR/README.md (counts, lengths, histograms) and print a short table."""
    from prefdata.jobs.stats import terminal_table, write_data_card

    stats = write_data_card(directory, tokenizer=tokenizer)
    if not quiet:
        click.echo(terminal_table(stats))
    click.echo(f"data card written to {stats['card']} with {len(stats['images'])} histogram(s)")
