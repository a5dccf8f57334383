"""`prefdata export`: thin click layer over `prefdata.jobs.export.export_dataset`."""

from __future__ import annotations

import click

from prefdata.cli.options import Names, from_signature, overwrite_option, quiet_option
from prefdata.jobs import export


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "-f", "format", required=True, type=click.Choice(export.FORMATS), help="Target format.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output folder.")
@from_signature(export.export_dataset, "container", type=click.Choice(export.CONTAINERS),
                help="File type for --format trl (arrow = a `datasets` save_to_disk folder).")
@from_signature(export.export_dataset, "splits", type=Names(), help="Comma-separated splits to export (default: all).")
@from_signature(export.export_dataset, "push_to_hub", metavar="REPO",
                help="Also upload to the Hugging Face Hub, each phase as its own config (token from HF_TOKEN; "
                     "checked before anything is written).")
@from_signature(export.export_dataset, "private", help="With --push-to-hub: create the repository private.")
@overwrite_option
@quiet_option
def export_command(directory, out, **kwargs) -> None:
    """Export a dataset directory for TRL, DeepSpeed-Chat, ChatLLaMA, LLaMA-Factory (ShareGPT), or as JSONL / Parquet."""
    report = export.export_dataset(directory, out, **kwargs)
    click.echo(export.export_summary(report, out))
