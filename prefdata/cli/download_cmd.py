"""`prefdata download hh-rlhf|shp|<hub id> --out DIR`: a thin click layer over `prefdata.jobs.download`."""

from __future__ import annotations

import click

from prefdata.cli.options import on_error_option, overwrite_option, quiet_option

HH_SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled", "red-team-attempts", "all")
_ONLY_FOR = {
    "subset": ("hh-rlhf", "--subset"),
    "domains": ("shp", "--domains"),
    "min_score_ratio": ("shp", "--min-score-ratio"),
    "max_pairs_per_post": ("shp", "--max-pairs-per-post"),
    "format_": ("hub", "--format"),
    "kind": ("hub", "--kind"),
    "map_": ("hub", "--map"),
}


@click.command("download")
@click.argument("name", metavar="hh-rlhf|shp|OWNER/NAME")
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Dataset directory to write.")
@click.option("--from", "from_path", type=click.Path(path_type=str), default=None,
              help="Read a local copy laid out as the Hub repository instead of downloading.")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) to download.")
@click.option("--subset", type=click.Choice(HH_SUBSETS), default=None,
              help="hh-rlhf: which subset [default: harmless-base]; all = the four pair subsets.")
@click.option("--domains", default=None, metavar="A,B,…", help="shp: only these domains (folder names).")
@click.option("--min-score-ratio", type=click.FloatRange(min=0), default=None,
              help="shp: drop pairs whose score ratio is below this [default: 2.0, as the card says; 0: off].")
@click.option("--max-pairs-per-post", type=click.IntRange(min=0), default=None,
              help="shp: keep at most N pairs per post, those with the largest score ratio [default: 5; 0: off].")
@click.option("--format", "format_", default=None, metavar="auto|NAME",
              help="OWNER/NAME: the file format, as for `prefdata import` [default: auto].")
@click.option("--kind", type=click.Choice(["preference", "unsup"]), default=None,
              help="OWNER/NAME: preference rows or unsup text [default: preference].")
@click.option("--map", "map_", multiple=True, metavar="FIELD=COLUMN,…", help="OWNER/NAME: column mapping, as for import.")
@on_error_option
@overwrite_option
@quiet_option
def download_command(name, out, from_path, revision, subset, domains, min_score_ratio, max_pairs_per_post, format_,
                     kind, map_, on_error, overwrite, quiet) -> None:
    """Download HH-RLHF, SHP or any Hub dataset `prefdata import` can read, into a dataset directory.

    \b
    prefdata download hh-rlhf --subset harmless-base --out data/hh
    prefdata download shp --domains askculinary,askphysics --out data/shp
    prefdata download OWNER/NAME --format trl --out data/x
    Without network, pass --from PATH: a copy of the repository's files in the same layout.
    """
    from prefdata.jobs import download
    from prefdata.pipeline.progress import summary_line

    target = name if name in ("hh-rlhf", "shp") else "hub"
    given = {"subset": subset, "domains": domains, "min_score_ratio": min_score_ratio,
             "max_pairs_per_post": max_pairs_per_post, "format_": format_, "kind": kind, "map_": map_ or None}
    for key, value in given.items():
        wanted, flag = _ONLY_FOR[key]
        if value is not None and wanted != target:
            raise click.UsageError(f"{flag} applies to {'OWNER/NAME' if wanted == 'hub' else wanted}, not to {name}")
    common = {"from_path": from_path, "revision": revision, "overwrite": overwrite, "quiet": quiet,
              "on_error": on_error}
    if target == "hh-rlhf":
        manifest = download.download_hh(out, subset or "harmless-base", **common)
    elif target == "shp":
        kwargs = {key: value for key, value in (("min_score_ratio", min_score_ratio),
                                                ("max_pairs_per_post", max_pairs_per_post)) if value is not None}
        manifest = download.download_shp(out, domains=domains.split(",") if domains else None, **kwargs, **common)
    else:
        from prefdata.cli.import_cmd import parse_map

        manifest = download.download_hub(name, out, format=format_ or "auto", kind=kind or "preference",
                                         mapping=parse_map(map_, {}) or None, **common)
    click.echo(summary_line(manifest, out))
