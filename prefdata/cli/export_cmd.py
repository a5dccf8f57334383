"""`prefdata export`: thin click layer over `prefdata.jobs.export.export_dataset`."""

from __future__ import annotations

import click

from prefdata.cli.options import overwrite_option, quiet_option

FORMATS = ("trl", "dschat", "chatllama", "jsonl", "parquet")


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "-f", "format_", required=True, type=click.Choice(FORMATS), help="Target format.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output folder.")
@click.option("--container", default="jsonl", show_default=True, type=click.Choice(["jsonl", "parquet", "arrow"]),
              help="File type for --format trl (arrow = a `datasets` save_to_disk folder).")
@click.option("--splits", default=None, help="Comma-separated splits to export (default: all).")
@click.option("--push-to-hub", default=None, metavar="REPO", help="Also upload to the Hugging Face Hub (token from HF_TOKEN).")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repository private.")
@overwrite_option
@quiet_option
def export_command(directory, format_, out, container, splits, push_to_hub, private, overwrite, quiet) -> None:
    """Export a dataset directory for TRL, DeepSpeed-Chat, ChatLLaMA, or as plain JSONL / Parquet."""
    from prefdata.jobs.export import export_dataset, export_summary

    report = export_dataset(directory, out, format=format_, container=container,
                   splits=[s for s in splits.split(",") if s] if splits else None, push_to_hub=push_to_hub,
                   private=private, overwrite=overwrite, quiet=quiet)
    click.echo(export_summary(report, out))
