"""`prefdata import FILE… --out DIR`: a thin click layer over `prefdata.jobs.importer.import_files`."""

from __future__ import annotations

import click

from prefdata.cli.options import on_error_option, overwrite_option, quiet_option
from prefdata.storage.readers import DEFAULT_MAX_RECORD_BYTES

_COLUMN_OPTIONS = {
    "prompt": "the prompt (a string, or a list of messages)",
    "chosen": "the chosen (or only) reply",
    "rejected": "the rejected reply",
    "chosen_score": "a score for the chosen reply",
    "rejected_score": "a score for the rejected reply",
    "system": "a system message put before the prompt",
    "group": "the group (rows of one group never straddle splits)",
    "text": "the text, with --kind unsup",
}


def parse_map(values: tuple[str, ...], columns: dict[str, str | None]) -> dict[str, str]:
    """``--map prompt=question,chosen=good`` (repeatable) merged with the ``--<field>-column`` options."""
    mapping: dict[str, str] = {}
    for value in values:
        for pair in value.split(","):
            if not pair.strip():
                continue
            target, sep, column = pair.partition("=")
            if not sep or not target.strip() or not column.strip():
                raise click.BadParameter(f"{pair!r} is not FIELD=COLUMN", param_hint="--map")
            mapping[target.strip()] = column.strip()
    for target, column in columns.items():
        if column:
            mapping[target] = column
    return mapping


def _column_options(function):
    for target, what in reversed(_COLUMN_OPTIONS.items()):
        flag = f"--{target.replace('_', '-')}-column"
        function = click.option(flag, f"{target}_column", metavar="COLUMN", help=f"Column with {what}.")(function)
    return function


@click.command("import")
@click.argument("files", nargs=-1, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Dataset directory to write.")
@click.option("--format", "format_", default="auto", show_default=True, metavar="auto|NAME",
              help="Input format; auto detects it from the keys of the first records and prints it.")
@click.option("--kind", type=click.Choice(["preference", "unsup"]), default="preference", show_default=True,
              help="preference rows, or unsupervised text for the PPO ptx term.")
@click.option("--map", "map_", multiple=True, metavar="FIELD=COLUMN,…",
              help="Explicit column mapping, e.g. --map prompt=question,chosen=good,rejected=bad.")
@_column_options
@click.option("--source", default=None, help="Source name stored in every row [default: custom/<file stem>].")
@click.option("--sample", is_flag=True, help="Import the bundled HH-shaped sample instead of FILE….")
@click.option("--max-record-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_RECORD_BYTES, show_default=True,
              help="Larger records are quarantined as record_too_large.")
@on_error_option
@overwrite_option
@quiet_option
def import_command(files, out, format_, kind, map_, source, sample, max_record_bytes, on_error, overwrite, quiet,
                   **columns):
    """Import custom files (JSONL, JSON arrays, CSV, Parquet, .txt; optionally .gz) into a dataset directory.

    \b
    Formats: chatllama-actor, chatllama-reward, chatllama-rlhf, dschat, trl-standard, trl-conversational,
    trl-implicit (HH-RLHF text), trl-conversational-implicit, trl-prompt-only, trl-prompt-completion,
    trl-messages, sharegpt, sharegpt-preference, alpaca, alpaca-preference, unsup-text, mapping.
    """
    from prefdata.contract.resources import sample_path
    from prefdata.jobs.importer import import_files
    from prefdata.pipeline.progress import summary_line

    if sample and files:
        raise click.UsageError("give FILE… or --sample, not both")
    if sample:
        files = (str(sample_path()),)
    if not files:
        raise click.UsageError("no input files (give FILE… or --sample)")
    mapping = parse_map(map_, {key.removesuffix("_column"): value for key, value in columns.items()})
    manifest = import_files(files, out, format=format_, kind=kind, mapping=mapping or None, source=source,
                            on_error=on_error, overwrite=overwrite, quiet=quiet, max_record_bytes=max_record_bytes)
    click.echo(summary_line(manifest, out))
