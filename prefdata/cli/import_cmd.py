"""`prefdata import FILE… --out DIR`: a thin click layer over `prefdata.jobs.importer.import_files`."""

from __future__ import annotations

import click

from prefdata.cli.options import (
    ON_ERROR_HELP,
    from_signature,
    map_option,
    overwrite_option,
    parse_map,
    quiet_option,
)
from prefdata.jobs import importer
from prefdata.pipeline.records import ON_ERROR

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


def _column_options(function):
    for target, what in reversed(_COLUMN_OPTIONS.items()):
        flag = f"--{target.replace('_', '-')}-column"
        function = click.option(flag, f"{target}_column", metavar="COLUMN", help=f"Column with {what}.")(function)
    return function


@click.command("import")
@click.argument("files", nargs=-1, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Dataset directory to write.")
@from_signature(importer.import_files, "format", metavar="auto|NAME",
                help="Input format; auto detects it from the keys of the first records and prints it.")
@from_signature(importer.import_files, "kind", type=click.Choice(["preference", "unsup"]),
                help="preference rows, or unsupervised text for the PPO ptx term.")
@map_option
@_column_options
@from_signature(importer.import_files, "source", help="Source name stored in every row [default: custom/<file stem>].")
@click.option("--sample", is_flag=True, help="Import the bundled HH-shaped sample instead of FILE….")
@from_signature(importer.import_files, "max_record_bytes", type=click.IntRange(min=1),
                help="Larger records are quarantined as record_too_large.")
@from_signature(importer.import_files, "on_error", type=click.Choice(ON_ERROR), help=ON_ERROR_HELP)
@overwrite_option
@quiet_option
def import_command(files, out, sample, map_, **kwargs):
    """Import custom files (JSONL, JSON arrays, CSV, Parquet, .txt; optionally .gz) into a dataset directory.

    \b
    Formats: chatllama-actor, chatllama-reward, chatllama-rlhf, dschat, trl-standard, trl-conversational,
    trl-implicit (HH-RLHF text), trl-conversational-implicit, trl-prompt-only, trl-prompt-completion,
    trl-messages, sharegpt, sharegpt-preference, alpaca, alpaca-preference, unsup-text, mapping.
    """
    from prefdata.contract.resources import sample_path
    from prefdata.pipeline.progress import summary_line

    if sample and files:
        raise click.UsageError("give FILE… or --sample, not both")
    if sample:
        files = (str(sample_path()),)
    if not files:
        raise click.UsageError("no input files (give FILE… or --sample)")
    columns = {key.removesuffix("_column"): kwargs.pop(key) for key in list(kwargs) if key.endswith("_column")}
    mapping = parse_map(map_, columns)
    manifest = importer.import_files(files, out, mapping=mapping or None, **kwargs)
    click.echo(summary_line(manifest, out))
