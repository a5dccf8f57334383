"""JSON Lines to rows in chunks of lines, in worker processes when the file is large: an executor, nothing more.

Per-record parsing (split the transcripts, hash the row) is Python-bound; on a large file the main process only
decompresses and writes Arrow, while workers turn chunks of raw lines into Arrow tables plus `Reject`s (the one reject
type of `prefdata.pipeline.records`, whose `RecordLoop` then writes, counts and quarantines them).
Results come back in file order, so the output is the same byte for byte whatever the number of workers, and at most
a few chunks are in flight, so memory stays flat however large the file.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from prefdata.contract.errors import RowError
from prefdata.contract.nesting import MAX_DEPTH, TOO_DEEP, too_deep
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, SCHEMAS
from prefdata.pipeline.records import Reject
from prefdata.storage.readers import TOO_DEEP_MESSAGE, open_binary

PairParts = tuple[list[str], list[str], str, str, str, str]
CHUNK_BYTES = 4 << 20  # raw (decompressed) bytes of lines handed to one worker task
PARALLEL_MIN_BYTES = 16 << 20  # below this (on disk) worker start-up costs more than it saves
_BOM = b"\xef\xbb\xbf"
_ALL_BUT_BRACKETS = bytes(set(range(256)) - set(b"[]{}\n"))  # `bytes.translate` deletes these


class RowParser(Protocol):
    """How a source's records become rows (`prefdata.formats.hh.PAIRS`, …): a `RowError` for what cannot be one."""

    def row(self, record: Mapping[str, Any], source: str) -> dict[str, Any]: ...


@runtime_checkable
class PairPartsParser(RowParser, Protocol):
    """A pair parser with a columnar twin: ``pair_parts(record)`` -> ``(roles, contents, chosen, rejected, id,
    group)``, the same checks and errors as ``row``. The Arrow columns are then built from flat lists, with no dict
    per row or message; the table is the same either way (tests/test_hh_fast_path.py)."""

    def pair_parts(self, record: Mapping[str, Any]) -> PairParts: ...


@dataclass
class Chunk:
    """What became of one chunk of lines: the rows as one Arrow table, and the records that did not become rows."""

    records: int = 0
    table: pa.Table | None = None
    rejects: list[Reject] = field(default_factory=list)


def convert_lines(lines: list[bytes], first_line: int, file: str, parser: RowParser, source: str, schema_id: str,
                  *, block: bytes | None = None) -> Chunk:
    """Parse raw JSONL lines (numbered from ``first_line``; line ends optional) with ``parser``; never raises for a
    bad record. ``block``, if given, is the lines' bytes as read (saves joining them again). A `PairPartsParser`
    of pair rows takes the columnar path.
    """
    schema = SCHEMAS[schema_id]
    columnar = schema_id == PREFERENCE_SCHEMA_ID and isinstance(parser, PairPartsParser)
    pair_parts = parser.pair_parts if columnar else None
    if pair_parts is not None:
        chunk = _convert_pairs_fast(lines, first_line, file, pair_parts, source, schema, block)
        if chunk is not None:
            return chunk
    columns: dict[str, list] = {name: [] for name in schema.names}
    pairs = _PairColumns()
    chunk = Chunk()
    for number, raw in enumerate(lines, start=first_line):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        chunk.records += 1
        if too_deep(raw):  # checked in the order `readers.iter_records` checks it: the same reason either way
            chunk.rejects.append(Reject(TOO_DEEP, TOO_DEEP_MESSAGE, raw.decode("utf-8", "replace"), file=file,
                                        line=number))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            chunk.rejects.append(Reject("bad_utf8", f"invalid UTF-8 at byte {e.start}",
                                        raw.decode("utf-8", "replace"), file=file, line=number))
            continue
        try:
            value = json.loads(text)
        except ValueError as e:
            chunk.rejects.append(Reject("bad_json", f"invalid JSON: {e}", text, file=file, line=number))
            continue
        if not isinstance(value, dict):
            chunk.rejects.append(Reject("not_an_object", f"a JSON {type(value).__name__}, not an object", value,
                                        file=file, line=number))
            continue
        try:
            if pair_parts is not None:
                pairs.add(*pair_parts(value))
                continue
            row = parser.row(value, source)
        except RowError as e:
            chunk.rejects.append(Reject.of(e, value, file=file, line=number))
            continue
        for name, column in columns.items():
            column.append(row[name])
    if pairs.ids:
        chunk.table = pairs.table(source, schema)
    elif any(columns.values()):
        chunk.table = pa.Table.from_pydict(columns, schema=schema)
    return chunk


def _string_records(lines: list[bytes], block: bytes | None = None) -> list[dict[str, str]] | None:
    """The lines' records when every line is one JSON object of string fields, decoded by pyarrow's C++ JSON reader
    (faster than `json.loads` per line); None when any line needs the per-line path and its exact reason codes.

    The reader refuses what `json.loads` refuses (raw control characters, duplicate keys, bad escapes, extra data);
    decoding the strings refuses bad UTF-8; the checks here catch a blank line, a BOM, a non-object, a missing field,
    a non-string value and a line holding two objects. Field order may differ from the line's: callers re-read the
    records they quarantine from their lines.
    """
    if not all(map(bytes.startswith, lines, repeat(b"{"))):
        return None
    if block is None:
        block = b"\n".join(lines)
    # pyarrow's reader recurses in C: a line nested 100,000 deep overflows its stack (SIGSEGV), so the depth is
    # checked first, in one pass: the block's brackets and line ends alone; a line with no more than the limit of
    # brackets cannot nest deeper than it.
    bracket_lines = block.translate(None, _ALL_BUT_BRACKETS).split(b"\n")
    if max(map(len, bracket_lines)) > MAX_DEPTH and any(map(too_deep, lines)):
        return None  # the per-line path quarantines the deep lines as too_deep
    import pyarrow.json as pj

    options = pj.ReadOptions(use_threads=False, block_size=len(block) + 1)
    try:
        table = pj.read_json(pa.BufferReader(block), read_options=options)
        if not table.num_columns or table.num_rows != len(lines):
            return None
        if any(not pa.types.is_string(c.type) or c.null_count for c in table.columns):
            return None
        values = [c.to_pylist() for c in table.columns]  # strict UTF-8 decoding (the reader does not check it)
    except (pa.ArrowException, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    names = table.column_names
    return [dict(zip(names, row)) for row in zip(*values)]


def _convert_pairs_fast(lines: list[bytes], first_line: int, file: str,
                        pair_parts: Callable[[Mapping[str, Any]], PairParts], source: str, schema: pa.Schema,
                        block: bytes | None) -> Chunk | None:
    """`convert_lines` for a ``pair_parts`` twin over `_string_records`; None to fall back to the per-line path."""
    records = _string_records(lines, block)
    if records is None:
        return None
    chunk = Chunk(records=len(records))
    pairs = _PairColumns()
    for number, value in enumerate(records, start=first_line):
        try:
            pairs.add(*pair_parts(value))
        except RowError as e:  # the record as the line spells it (field order), as the per-line path stores it
            original = json.loads(lines[number - first_line])
            chunk.rejects.append(Reject.of(e, original, file=file, line=number))
    if pairs.ids:
        chunk.table = pairs.table(source, schema)
    return chunk


class _PairColumns:
    """Flat column lists for pair rows with no scores and no meta; the prompt column is built from flat messages."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.groups: list[str] = []
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.offsets: list[int] = [0]
        self.chosen: list[str] = []
        self.rejected: list[str] = []

    def add(self, roles: list[str], contents: list[str], chosen: str, rejected: str, row_id: str, group: str) -> None:
        self.ids.append(row_id)
        self.groups.append(group)
        self.roles += roles
        self.contents += contents
        self.offsets.append(len(self.roles))
        self.chosen.append(chosen)
        self.rejected.append(rejected)

    def table(self, source: str, schema: pa.Schema) -> pa.Table:
        n = len(self.ids)
        message = schema.field("prompt").type.value_type
        fields = {"role": pa.array(self.roles, pa.string()), "content": pa.array(self.contents, pa.string())}
        messages = pa.StructArray.from_arrays(  # the tool fields of /2 messages: null (no Python per message)
            [fields[f.name] if f.name in fields else pa.nulls(len(self.roles), f.type) for f in message],
            fields=list(message),
        )
        values = {
            "id": self.ids, "source": [source] * n, "group": self.groups,
            "prompt": pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), messages),
            "chosen": self.chosen, "rejected": self.rejected,
            "chosen_score": [None] * n, "rejected_score": [None] * n, "meta": ["{}"] * n,
        }
        arrays = [values[f.name] if isinstance(values.get(f.name), pa.Array)
                  else pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)


def _blocks(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """The file as ``(first line number, bytes)`` blocks of about `CHUNK_BYTES` that end at a line end.

    One bytes object per block is cheap to hand to a worker; the worker splits the lines (`convert_block`).
    """
    with open_binary(path) as stream:
        first = 1
        while True:
            block = stream.read(CHUNK_BYTES)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += stream.readline()  # finish the last line (one longer than a block included)
            yield first, block
            first += block.count(b"\n")


def convert_block(block: bytes, first_line: int, file: str, parser: RowParser, source: str, schema_id: str) -> Chunk:
    """`convert_lines` for a block of whole lines: the lines are split at ``\n`` exactly as `readlines` does."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the block ends with a line end: no line after it
    return convert_lines(lines, first_line, file, parser, source, schema_id, block=block)


class _NoPandas:
    """An import finder that refuses pandas: `_start_worker` installs it for one call."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not imported in prefdata's workers", name=name)


def _start_worker() -> None:
    """Workers allocate millions of short-lived, acyclic dicts: collect cycles less often (still collected).

    And pyarrow's first `pa.array` of Python values imports pandas only to ask whether they are a pandas object:
    ~0.4 s of CPU in every worker, the largest start-up cost left on the download path (`bench/import_hh.py
    --whole-process`). A worker only ever holds Python lists, so that probe is answered once here with the import
    refused (pyarrow then takes pandas as absent); afterwards pandas is importable again, and pyarrow's pandas
    conversions retry the import should anything in a worker need them.
    """
    gc.set_threshold(50_000, 50, 100)
    if "pandas" not in sys.modules:  # a forked worker of a process that has pandas gets the answer for free
        refuse = _NoPandas()
        sys.meta_path.insert(0, refuse)
        try:
            pa.array([], pa.string())
        finally:
            sys.meta_path.remove(refuse)


def default_workers(path: str | os.PathLike) -> int:
    """No workers for small files; otherwise one per core (the main process mostly waits on them)."""
    if os.path.getsize(path) < PARALLEL_MIN_BYTES:
        return 0
    return max(1, min(os.cpu_count() or 1, 8))


def convert_file(
    path: str | os.PathLike, parser: RowParser, *, source: str, schema_id: str, workers: int | None = None
) -> Iterator[Chunk]:
    """Yield the `Chunk`s of a JSONL(.gz) file in file order. ``workers=0`` converts in this process."""
    file = str(path)
    if workers is None:
        workers = default_workers(path)
    if workers <= 0:
        for first, block in _blocks(path):
            yield convert_block(block, first, file, parser, source, schema_id)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork where there is one: workers start in milliseconds and need no importable __main__ (a notebook, stdin).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                             initializer=_start_worker) as pool:
        pending: deque = deque()
        for first, block in _blocks(path):
            pending.append(pool.submit(convert_block, block, first, file, parser, source, schema_id))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
