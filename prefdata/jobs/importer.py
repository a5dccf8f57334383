"""`prefdata import`: custom files in any supported format -> one canonical dataset directory.

A small stream per file: `readers.iter_records` (containers, gzip, file-level defects) -> the format's pure parser
(`prefdata.formats`) -> the record loop (`prefdata.pipeline.records`: row or quarantine, counted per file) ->
`DatasetWriter` (shards, reconciled counts, atomic rename). Formats are resolved
for every file before anything is written, so a file that cannot be read leaves no output behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, UNSUP_SCHEMA_ID
from prefdata.formats import KINDS, Format, detect_format, resolve_format
from prefdata.pipeline.progress import info, progress
from prefdata.pipeline.records import ParsedRow, RecordLoop, Reject, check_on_error, parse_records
from prefdata.storage.dataset import DatasetWriter, check_output_dir
from prefdata.storage.readers import DEFAULT_MAX_RECORD_BYTES, check_input_file, iter_records

SPLIT = "train"
_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".txt", ".md")

__all__ = ["ParsedRow", "Reject", "default_source", "detect_format", "import_files", "iter_parsed"]


def default_source(path: str | os.PathLike) -> str:
    """``custom/<file stem>``: ``data/train.jsonl.gz`` -> ``custom/train``."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            if suffix != ".gz":
                break
    return f"custom/{name}"


def iter_parsed(
    path: str | os.PathLike,
    format: str | Format = "auto",
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    *,
    kind: str = "preference",
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[ParsedRow | Reject]:
    """Every record of ``path`` as a `ParsedRow` or a `Reject`, in file order, without writing anything."""
    fmt = format if isinstance(format, Format) else resolve_format(path, format, kind, mapping,
                                                                     max_record_bytes=max_record_bytes)
    source = source or default_source(path)
    return parse_records(iter_records(path, max_record_bytes=max_record_bytes), lambda value: fmt.parse(value, source))


def import_files(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    format: str = "auto",
    kind: str = "preference",
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    on_error: str = "quarantine",
    overwrite: bool = False,
    quiet: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> dict[str, Any]:
    """Import ``files`` into the dataset directory ``out``; return its manifest.

    Every record becomes a row or a line of ``quarantine.jsonl`` with a reason code; with ``on_error="fail"`` the first
    bad record stops the run with a `PrefdataError` naming its file, line and field, and nothing is written.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]  # one path, not a sequence of characters
    if not files:
        raise PrefdataError("no input files given")
    if kind not in KINDS:
        raise PrefdataError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    check_on_error(on_error)
    if max_record_bytes < 1:
        raise PrefdataError("--max-record-bytes must be positive")
    out = Path(out)
    check_output_dir(out, overwrite)
    plan: list[tuple[Path, Format, str]] = []
    for file in files:
        path = check_input_file(file)
        fmt = resolve_format(path, format, kind, mapping, max_record_bytes=max_record_bytes)
        how = "detected" if format == "auto" and not mapping else "given"
        info(f"{path}: format {fmt.name} ({how}: {fmt.description})", quiet)
        plan.append((path, fmt, source or default_source(path)))

    options = {"files": [str(f) for f in files], "out": str(out), "format": format, "kind": kind,
               "mapping": dict(mapping or {}), "source": source, "on_error": on_error,
               "max_record_bytes": max_record_bytes}
    schema_id = PREFERENCE_SCHEMA_ID if kind == "preference" else UNSUP_SCHEMA_ID
    with DatasetWriter(out, command="import", options=options, schema_id=schema_id, overwrite=overwrite) as writer:
        loop = RecordLoop(writer, on_error)
        writer.split(SPLIT)  # set up the split (and import datasets) before the progress bar starts its clock
        for path, fmt, file_source in plan:
            writer.add_input(path)
            counts = loop.describe(str(path), format=fmt.name, source=file_source)
            loop.consume(progress(iter_parsed(path, fmt, source=file_source, max_record_bytes=max_record_bytes),
                                  desc=f"import {path.name}", quiet=quiet), SPLIT)
            if counts.records and not counts.rows:
                writer.warn(f"{path}: no record became a row (see quarantine.jsonl)")
        loop.finish()
    assert writer.manifest is not None
    return writer.manifest
