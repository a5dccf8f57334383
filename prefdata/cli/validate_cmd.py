"""`prefdata validate`: a thin click layer over `prefdata.jobs.validate.validate_paths`."""

from __future__ import annotations

import click

from prefdata.cli.options import from_signature, quiet_option
from prefdata.jobs import validate


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@from_signature(validate.validate_paths, "schema", metavar="NAME|auto|FILE",
                help=f"Schema for data files: auto (from the record keys), {', '.join(validate.SCHEMA_NAMES)}, or a "
                     "path to a JSON Schema file. A file named templates.json is checked as templates. Directories "
                     "are always checked as prefdata datasets.")
@from_signature(validate.validate_paths, "max_errors", type=click.IntRange(min=0),
                help="Print at most this many violations (all are counted); 0 prints them all.")
@quiet_option
def validate_command(paths: tuple[str, ...], schema: str, max_errors: int, quiet: bool) -> None:
    """Check data files against a JSON Schema, or prefdata dataset directories against the data contract.

    Each violation is printed as FILE:LINE: /json/pointer: message (DIR/split:ROW: /field: message for a dataset
    directory). Exit status: 0 when everything is valid, 1 when violations were found, 2 for a file that cannot be
    read at all (missing, a Git LFS pointer, corrupt gzip, truncated JSON).
    """
    from prefdata.contract.errors import ValidationFailed
    from prefdata.pipeline.progress import info

    report = validate.validate_paths(list(paths), schema=schema, max_errors=max_errors, out=click.echo,
                                     note=lambda message: info(message, quiet), quiet=quiet)
    if not report.ok:
        raise ValidationFailed(report.summary())
    click.echo(report.summary())
