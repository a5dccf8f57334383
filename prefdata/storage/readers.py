"""Readers: a file in, a stream of records out, one at a time (a 1 GB file is never loaded whole).

Each record is a `Record` (parsed value with its file, line and index) or a `BadRecord` (a defect in that one record,
to be quarantined with its reason). Defects of the whole file (missing, empty, a Git LFS pointer, corrupt gzip,
truncated JSON array, invalid UTF-8 in a JSON array or CSV) raise `PrefdataError` naming the file and line.
A UTF-8 BOM and CRLF line ends are read correctly, not refused: Excel and Windows tools write them.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from prefdata.contract.errors import PrefdataError
from prefdata.contract.nesting import TOO_DEEP, too_deep
from prefdata.storage import json_array
from prefdata.storage.record_types import TOO_DEEP_MESSAGE, BadRecord, Record, too_large

CONTAINERS = ("jsonl", "json", "csv", "parquet", "txt")
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8
_CHUNK = 1 << 20
_SPECIAL_FILES = {stat.S_IFIFO: "pipe (FIFO)", stat.S_IFCHR: "character device", stat.S_IFSOCK: "socket",
                  stat.S_IFBLK: "block device"}


def check_input_file(path: str | os.PathLike) -> Path:
    """Refuse what cannot be data before reading it: a missing path, a directory, an empty file, a Git LFS pointer."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise PrefdataError("no such file", file=str(path)) from None
    except OSError as e:  # a symlink loop, a permission, a name too long: say which
        raise PrefdataError(f"cannot be read: {e.strerror}", file=str(path)) from None
    if stat.S_ISDIR(mode):
        raise PrefdataError("is a directory, not a file", file=str(path))
    if not stat.S_ISREG(mode):
        # Inputs are read more than once (sniffed, read, hashed for the manifest): a pipe cannot be.
        raise PrefdataError(f"is a {_SPECIAL_FILES.get(stat.S_IFMT(mode), 'special file')}, not a regular file; "
                            f"save the data to a file first", file=str(path))
    if p.stat().st_size == 0:
        raise PrefdataError("is empty", file=str(path))
    with open(p, "rb") as f:
        head = f.read(512)
    if head.startswith(LFS_POINTER_PREFIX):
        size = next((ln.split()[1].decode() for ln in head.splitlines() if ln.startswith(b"size ")), "?")
        raise PrefdataError(
            f"is a Git LFS pointer (to {size} bytes), not the data: fetch the real file with `git lfs pull`",
            file=str(path),
        )
    return p


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def container_of(path: str | os.PathLike) -> str:
    """The container by file name (``.gz`` looked through); unknown names are sniffed from the first byte."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".csv", "csv"),
                         (".tsv", "csv"), (".parquet", "parquet"), (".txt", "txt"), (".md", "txt")):
        if name.endswith(suffix):
            return kind
    return "json"


class _GuardedStream(io.RawIOBase):
    """A binary stream that turns decompression failures into one-line `PrefdataError`s."""

    def __init__(self, raw: BinaryIO, file: str) -> None:
        self._raw = raw
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (EOFError, OSError, zlib.error) as e:
            raise PrefdataError(f"corrupt or truncated gzip data: {e}", file=self._file) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open a checked input for reading, decompressing gzip transparently (detected by magic bytes, not name)."""
    p = check_input_file(path)
    raw: BinaryIO = gzip.open(p, "rb") if is_gzip(p) else open(p, "rb")  # type: ignore[assignment]
    return io.BufferedReader(_GuardedStream(raw, str(path)), buffer_size=_CHUNK)


def iter_records(
    path: str | os.PathLike, container: str | None = None, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Record | BadRecord]:
    """Stream the records of one file. ``container`` is one of `CONTAINERS` (default: from the file name)."""
    kind = container or container_of(path)
    if kind == "parquet":
        yield from _iter_parquet(path, max_record_bytes)
        return
    with open_binary(path) as stream:
        head = stream.peek(4)[:4]
        if not head:
            raise PrefdataError("is empty after decompression", file=str(path))
        if kind == "json" and head.lstrip(_BOM).lstrip()[:1] == b"{":
            kind = "jsonl"  # many .json files are really JSON Lines (SHP's are)
        readers = {"jsonl": _iter_jsonl, "json": json_array.iter_json_array, "csv": _iter_csv,
                   "txt": _iter_text_blocks}
        if kind not in readers:
            raise PrefdataError(f"unknown container {kind!r}; choose one of {', '.join(CONTAINERS)}", file=str(path))
        yield from readers[kind](stream, str(path), max_record_bytes)


def _iter_jsonl(stream: BinaryIO, file: str, max_bytes: int) -> Iterator[Record | BadRecord]:
    index = 0
    for line_number, raw in enumerate(stream, start=1):
        if line_number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        here = (file, index, line_number)
        index += 1
        if len(raw) > max_bytes:
            yield BadRecord(*here, "record_too_large", too_large(len(raw), max_bytes), None)
            continue
        if too_deep(raw):
            yield BadRecord(*here, TOO_DEEP, TOO_DEEP_MESSAGE, raw.decode("utf-8", "replace"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield BadRecord(*here, "bad_utf8", f"invalid UTF-8 at byte {e.start}", raw.decode("utf-8", "replace"))
            continue
        if line_number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        try:
            value = json.loads(text)
        except ValueError as e:
            yield BadRecord(*here, "bad_json", f"invalid JSON: {e}", text)
            continue
        if not isinstance(value, dict):
            yield BadRecord(*here, "not_an_object", f"a JSON {type(value).__name__}, not an object", value)
            continue
        yield Record(*here, value)


def _decoded_lines(stream: BinaryIO, file: str) -> Iterator[str]:
    """Text lines (line ends kept), decoded one physical line at a time so bad UTF-8 is reported on its own line."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PrefdataError(f"invalid UTF-8 bytes at byte {e.start} of the line ({e.reason})", file=file,
                                line=number) from None


def _iter_csv(stream: BinaryIO, file: str, max_bytes: int) -> Iterator[Record | BadRecord]:
    csv.field_size_limit(max(max_bytes, 1 << 20))
    dialect = "excel-tab" if file.lower().removesuffix(".gz").endswith(".tsv") else "excel"
    reader = csv.reader(_decoded_lines(stream, file), dialect=dialect)
    try:
        header = next(reader)
        if not any(h.strip() for h in header):
            raise PrefdataError("the CSV header is empty", file=file, line=1)
        _check_unique_columns(header, file)
        index, line = 0, reader.line_num + 1
        for cells in reader:
            here = (file, index, line)
            line = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            index += 1
            if len(cells) != len(header):
                raw = dict(zip(header, cells))
                yield BadRecord(*here, "bad_csv", f"{len(cells)} fields where the header has {len(header)}", raw)
                continue
            if (size := sum(map(len, cells))) * 4 > max_bytes and (size := _utf8_size(cells)) > max_bytes:
                yield BadRecord(*here, "record_too_large", too_large(size, max_bytes), None)
                continue
            # CSV has no null: an empty cell is a missing value.
            yield Record(*here, {h: (c if c != "" else None) for h, c in zip(header, cells)})
    except csv.Error as e:
        raise PrefdataError(f"malformed CSV: {e}", file=file, line=reader.line_num) from None


def _check_unique_columns(header: list[str], file: str) -> None:
    """A column named twice would lose one of its values in the record's dict: refuse the file instead."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise PrefdataError(f"the CSV header names column {name!r} twice (columns {seen[name]} and {number})",
                                file=file, line=1)
        seen[name] = number


def _utf8_size(cells: list[str]) -> int:
    return sum(len(cell.encode("utf-8", "surrogatepass")) for cell in cells)


def _iter_text_blocks(stream: BinaryIO, file: str, max_bytes: int) -> Iterator[Record | BadRecord]:
    """Plain text: one document per block of lines separated by blank lines."""
    block: list[str] = []
    start, index = 0, 0
    for number, raw_line in enumerate(_decoded_lines(stream, file), start=1):
        line = raw_line.rstrip("\r\n")
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield Record(file, index, start, {"text": "\n".join(block)})
            index += 1
            block = []
    if block:
        yield Record(file, index, start, {"text": "\n".join(block)})


def _iter_parquet(path: str | os.PathLike, max_bytes: int) -> Iterator[Record | BadRecord]:
    import pyarrow.parquet as pq

    p = check_input_file(path)
    try:
        parquet = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise PrefdataError(f"not a readable Parquet file: {' '.join(str(e).split())}", file=str(path)) from None
    index = 0
    batches = parquet.iter_batches(batch_size=4096)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            values = batch.to_pylist()
        except Exception as e:  # a damaged page: pyarrow raises OSError, ArrowInvalid, UnicodeDecodeError, …
            raise PrefdataError(f"corrupt Parquet data after record {index}: {' '.join(str(e).split())}",
                                file=str(path)) from None
        # A row is over the limit only if the batch is: a cheap test first (nbytes of a slice counts its own values).
        sizes = ([batch.slice(i, 1).nbytes for i in range(batch.num_rows)] if batch.nbytes > max_bytes
                 else [0] * batch.num_rows)
        for value, size in zip(values, sizes):
            if size > max_bytes:
                yield BadRecord(str(path), index, None, "record_too_large", too_large(size, max_bytes), None)
            else:
                yield Record(str(path), index, None, value)
            index += 1
