"""`prefdata split`: thin click layer over `prefdata.jobs.split.split_datasets`."""

from __future__ import annotations

import click

from prefdata.cli.options import overwrite_option, quiet_option


def _numbers(name: str, count: int | None = None):
    def convert(ctx, param, value):
        if value is None:
            return None
        from prefdata.jobs.split import parse_numbers

        return parse_numbers(value, name, count)

    return convert


@click.command("split")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output dataset directory.")
@click.option("--ratio", default="6,2,2", show_default=True, callback=_numbers("ratio", 3),
              help="Relative share of groups for sft,rm,ppo; zeros allowed (10,0,0 = SFT only).")
@click.option("--eval-fraction", default=0.05, show_default=True, type=float, help="Share of groups held out per phase.")
@click.option("--seed", default=1234, show_default=True, type=int, help="Seed of the assignment hash.")
@click.option("--splits", default=None, help="Comma-separated input splits to use (default: every split).")
@click.option("--weights", default=None, callback=_numbers("weights"),
              help="Blend weights, one per input (e.g. 0.7,0.3); seeded sampling, achieved mix in the manifest.")
@click.option("--max-rows", default=None, type=click.IntRange(min=0), help="Keep at most N input rows after dedup.")
@click.option("--near-dup", default=None, type=click.FloatRange(0, 1, min_open=True),
              help="Drop rows whose prompt+replies have estimated Jaccard similarity >= THRESHOLD (MinHash/LSH).")
@click.option("--exclude", multiple=True, type=click.Path(file_okay=False),
              help="Dataset directory (an eval set) whose prompts must not occur in the output; repeatable.")
@overwrite_option
@quiet_option
def split_command(inputs, out, ratio, eval_fraction, seed, splits, weights, max_rows, near_dup, exclude, overwrite,
                  quiet) -> None:
    """Split dataset directories into sft/rm/ppo train and eval parts by a seeded hash of `group`."""
    from prefdata.jobs.split import split_datasets
    from prefdata.pipeline.progress import summary_line

    manifest = split_datasets(inputs, out, ratio=ratio, eval_fraction=eval_fraction, seed=seed,
                   splits=[s for s in splits.split(",") if s] if splits else None, weights=weights,
                   max_rows=max_rows, near_dup=near_dup, exclude=exclude, overwrite=overwrite, quiet=quiet)
    click.echo(summary_line(manifest, out))
