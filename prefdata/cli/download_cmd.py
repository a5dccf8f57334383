"""`prefdata download hh-rlhf|shp|<hub id> --out DIR`: a thin click layer over `prefdata.jobs.download`.

Each option's default is the one of the function it applies to (`download_hh`, `download_shp`, `download_hub`); an
option given for another target is refused.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from prefdata.cli.options import (
    ON_ERROR_HELP,
    Names,
    from_signature,
    map_option,
    overwrite_option,
    parse_map,
    quiet_option,
)
from prefdata.formats import hh
from prefdata.jobs import download
from prefdata.pipeline.records import ON_ERROR

# option: (the target it applies to, its flag)
_ONLY_FOR = {
    "subset": ("hh-rlhf", "--subset"),
    "domains": ("shp", "--domains"),
    "min_score_ratio": ("shp", "--min-score-ratio"),
    "max_pairs_per_post": ("shp", "--max-pairs-per-post"),
    "format": ("hub", "--format"),
    "kind": ("hub", "--kind"),
    "map_": ("hub", "--map"),
}


@click.command("download")
@click.argument("name", metavar="hh-rlhf|shp|OWNER/NAME")
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Dataset directory to write.")
@from_signature(download.download_hh, "from_path", "--from", type=click.Path(path_type=str),
                help="Read a local copy laid out as the Hub repository instead of downloading.")
@from_signature(download.download_hh, "revision", help="Hub revision (branch, tag or commit) to download.")
@from_signature(download.download_hh, "subset", type=click.Choice((*hh.SUBSETS, "all")),
                help="hh-rlhf: which subset; all = the four pair subsets.")
@from_signature(download.download_shp, "domains", type=Names(), help="shp: only these domains (folder names).")
@from_signature(download.download_shp, "min_score_ratio", type=click.FloatRange(min=0),
                help="shp: drop pairs whose score ratio is below this (the card's advice; 0: off).")
@from_signature(download.download_shp, "max_pairs_per_post", type=click.IntRange(min=0),
                help="shp: keep at most N pairs per post, those with the largest score ratio (0: off).")
@from_signature(download.download_hub, "format", metavar="auto|NAME",
                help="OWNER/NAME: the file format, as for `prefdata import`.")
@from_signature(download.download_hub, "kind", type=click.Choice(["preference", "unsup"]),
                help="OWNER/NAME: preference rows or unsup text.")
@map_option
@from_signature(download.download_hh, "on_error", type=click.Choice(ON_ERROR), help=ON_ERROR_HELP)
@overwrite_option
@quiet_option
def download_command(name, out, map_, **kwargs) -> None:
    """Download HH-RLHF, SHP or any Hub dataset `prefdata import` can read, into a dataset directory.

    \b
    prefdata download hh-rlhf --subset harmless-base --out data/hh
    prefdata download shp --domains askculinary,askphysics --out data/shp
    prefdata download OWNER/NAME --format trl --out data/x
    Without network, pass --from PATH: a copy of the repository's files in the same layout.
    """
    from prefdata.pipeline.progress import summary_line

    ctx = click.get_current_context()
    target = name if name in ("hh-rlhf", "shp") else "hub"
    for key, (wanted, flag) in _ONLY_FOR.items():
        if wanted != target and ctx.get_parameter_source(key) is not ParameterSource.DEFAULT:
            raise click.UsageError(f"{flag} applies to {'OWNER/NAME' if wanted == 'hub' else wanted}, not to {name}")
    given = {key: value for key, value in kwargs.items() if key not in _ONLY_FOR or _ONLY_FOR[key][0] == target}
    if target == "hh-rlhf":
        manifest = download.download_hh(out, **given)
    elif target == "shp":
        manifest = download.download_shp(out, **given)
    else:
        manifest = download.download_hub(name, out, mapping=parse_map(map_, {}) or None, **given)
    click.echo(summary_line(manifest, out))
