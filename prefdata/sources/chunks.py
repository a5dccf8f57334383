"""JSON Lines to rows in chunks of lines, in worker processes when the file is large.

Per-record parsing (split the transcripts, hash the row) is Python-bound; on a large file the main process only
decompresses and writes Arrow, while workers turn chunks of raw lines into Arrow tables plus quarantine entries.
Results come back in file order, so the output is the same byte for byte whatever the number of workers, and at most
a few chunks are in flight, so memory stays flat however large the file.
"""

from __future__ import annotations

import gc
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from prefdata.errors import RowError
from prefdata.readers import open_binary
from prefdata.row import SCHEMAS

RowFn = Callable[[Mapping[str, Any], str], dict[str, Any]]
CHUNK_BYTES = 4 << 20  # raw (decompressed) bytes of lines handed to one worker task
PARALLEL_MIN_BYTES = 16 << 20  # below this (on disk) worker start-up costs more than it saves
_BOM = b"\xef\xbb\xbf"


@dataclass
class Chunk:
    """What became of one chunk of lines: the rows as one Arrow table, and the records that did not become rows."""

    records: int = 0
    table: pa.Table | None = None
    quarantined: list[dict[str, Any]] = field(default_factory=list)


def convert_lines(lines: list[bytes], first_line: int, file: str, row_fn: RowFn, source: str, schema_id: str) -> Chunk:
    """Parse raw JSONL lines (numbered from ``first_line``) with ``row_fn``; never raises for a bad record."""
    schema = SCHEMAS[schema_id]
    columns: dict[str, list] = {name: [] for name in schema.names}
    chunk = Chunk()
    for number, raw in enumerate(lines, start=first_line):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        chunk.records += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            chunk.quarantined.append(_entry(number, "bad_utf8", f"invalid UTF-8 at byte {e.start}",
                                            raw.decode("utf-8", "replace")))
            continue
        try:
            value = json.loads(text)
        except ValueError as e:
            chunk.quarantined.append(_entry(number, "bad_json", f"invalid JSON: {e}", text))
            continue
        if not isinstance(value, dict):
            chunk.quarantined.append(_entry(number, "not_an_object", f"a JSON {type(value).__name__}, not an object",
                                            value))
            continue
        try:
            row = row_fn(value, source)
        except RowError as e:
            chunk.quarantined.append(_entry(number, e.reason, e.message, value, e.field))
            continue
        for name, column in columns.items():
            column.append(row[name])
    if any(columns.values()):
        chunk.table = pa.Table.from_pydict(columns, schema=schema)
    return chunk


def _entry(line: int, reason: str, message: str, record: Any, field_name: str | None = None) -> dict[str, Any]:
    return {"line": line, "reason": reason, "message": message, "record": record, "field": field_name}


def _line_chunks(path: str | os.PathLike) -> Iterator[tuple[int, list[bytes]]]:
    with open_binary(path) as stream:
        first = 1
        while True:
            lines = stream.readlines(CHUNK_BYTES)
            if not lines:
                return
            yield first, lines
            first += len(lines)


def _quieter_gc() -> None:
    """Workers allocate millions of short-lived, acyclic dicts: collect cycles less often (still collected)."""
    gc.set_threshold(50_000, 50, 100)


def default_workers(path: str | os.PathLike) -> int:
    """No workers for small files; otherwise one per core (the main process mostly waits on them)."""
    if os.path.getsize(path) < PARALLEL_MIN_BYTES:
        return 0
    return max(1, min(os.cpu_count() or 1, 8))


def convert_file(
    path: str | os.PathLike, row_fn: RowFn, *, source: str, schema_id: str, workers: int | None = None
) -> Iterator[Chunk]:
    """Yield the `Chunk`s of a JSONL(.gz) file in file order. ``workers=0`` converts in this process."""
    file = str(path)
    if workers is None:
        workers = default_workers(path)
    if workers <= 0:
        for first, lines in _line_chunks(path):
            yield convert_lines(lines, first, file, row_fn, source, schema_id)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork where there is one: workers start in milliseconds and need no importable __main__ (a notebook, stdin).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                             initializer=_quieter_gc) as pool:
        pending: deque = deque()
        for first, lines in _line_chunks(path):
            pending.append(pool.submit(convert_lines, lines, first, file, row_fn, source, schema_id))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
