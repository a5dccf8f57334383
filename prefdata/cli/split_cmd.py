"""`prefdata split`: thin click layer over `prefdata.jobs.split.split_datasets`."""

from __future__ import annotations

import click

from prefdata.cli.options import Names, Numbers, from_signature, overwrite_option, quiet_option
from prefdata.jobs import split, split_pairs


@click.command("split")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output dataset directory.")
@from_signature(split.split_datasets, "ratio", type=Numbers(lambda text: split.parse_numbers(text, "ratio", 3)),
                help="Relative share of groups for sft,rm,ppo; zeros allowed (10,0,0 = SFT only).")
@from_signature(split.split_datasets, "eval_fraction", type=float, help="Share of groups held out per phase.")
@from_signature(split.split_datasets, "seed", type=int, help="Seed of the assignment hash.")
@from_signature(split.split_datasets, "splits", type=Names(), help="Comma-separated input splits to use (default: every split).")
@from_signature(split.split_datasets, "weights", type=Numbers(lambda text: split.parse_numbers(text, "weights")),
                help="Blend weights, one per input (e.g. 0.7,0.3); seeded sampling, achieved mix in the manifest.")
@from_signature(split.split_datasets, "max_rows", type=click.IntRange(min=0), help="Keep at most N input rows after dedup.")
@from_signature(split.split_datasets, "near_dup", type=click.FloatRange(0, 1, min_open=True),
                help="Drop rows whose prompt+replies have estimated Jaccard similarity >= THRESHOLD (MinHash/LSH).")
@from_signature(split.split_datasets, "exclude", multiple=True, type=click.Path(),
                help="Eval set (dataset directory, or JSONL of prompts: a string or {id, prompt} per line) whose prompts "
                     "must not occur in the output, exactly or by --exclude-ngram overlap; repeatable.")
@from_signature(split.split_datasets, "exclude_ngram", type=click.IntRange(min=0),
                help="Drop rows sharing a run of N words with an --exclude prompt (0: exact prompt match only).")
@from_signature(split.split_datasets, "pairs", type=click.Choice(split_pairs.POLICIES),
                help="Turn each prompt's scored answers into pairs: all (K-choose-2), best-worst or best-vs-rest; "
                     "answers in no pair are quarantined (default: all, and lone answers stay demonstrations).")
@from_signature(split.split_datasets, "min_margin", type=click.FloatRange(min=0),
                help="With --pairs: a comparison whose score difference is below this is a tie and makes no pair.")
@overwrite_option
@quiet_option
def split_command(inputs, out, **kwargs) -> None:
    """Split dataset directories into sft/rm/ppo train and eval parts by a seeded hash of `group`."""
    from prefdata.pipeline.progress import summary_line

    manifest = split.split_datasets(inputs, out, **kwargs)
    click.echo(summary_line(manifest, out))
