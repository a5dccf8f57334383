"""Test helpers shared by several test files: rows from the real HH file, small dataset directories, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefdata.cli import main
from prefdata.jobs.importer import ParsedRow, iter_parsed
from prefdata.storage.dataset import DatasetWriter


def hh_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The real HH-RLHF records that make valid pairs (the first ``limit``), parsed as `prefdata import` parses them."""
    rows = []
    for item in iter_parsed(path, "trl-implicit", source="hh-rlhf/harmless-base"):
        if isinstance(item, ParsedRow):
            rows.append(item.row)
            if len(rows) == limit:
                break
    return rows


def write_dataset(path: Path, rows: list[dict[str, Any]] | dict[str, list[dict[str, Any]]]) -> Path:
    """A dataset directory holding ``rows`` (split ``train``) or ``{split: rows}``; every split exists even if empty."""
    splits = rows if isinstance(rows, dict) else {"train": rows}
    with DatasetWriter(path, command="test") as writer:
        for name, split_rows in splits.items():
            writer.split(name)
            for row in split_rows:
                writer.count_in()
                writer.write(row, name)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``prefdata ARGV…`` in-process as a user would; return (exit code, stdout, stderr)."""
    try:
        main([str(arg) for arg in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
