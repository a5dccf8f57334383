"""Progress bars and the end-of-run summary line shared by every verb."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import click
from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, quiet: bool = False,
             unit: str = "rec") -> Iterable[T]:
    """A tqdm bar on stderr that shows up only for work lasting more than a moment, and never with ``--quiet``."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=quiet, file=sys.stderr, mininterval=0.5,
                delay=1.0, dynamic_ncols=True)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(message, err=True)


def summary_line(manifest: Mapping[str, Any], out: str) -> str:
    """One line: rows per split, quarantine by reason, warnings count; printed at the end of every writing verb."""
    counts = manifest["counts"]
    splits = ", ".join(f"{name} {info['rows']:,}" for name, info in manifest["splits"].items())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in counts["quarantined_by_reason"].items())
    line = f"{counts['records_in']:,} records in -> {counts['rows_out']:,} rows ({splits}) in {out}"
    line += f"; quarantined {counts['quarantined']:,}" + (f" ({reasons})" if reasons else "")
    if manifest.get("warnings"):
        line += f"; {len(manifest['warnings'])} warning(s): " + "; ".join(manifest["warnings"])
    return line
