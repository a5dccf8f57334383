"""The dataset directory (design §2): Arrow shards in `save_to_disk` layout, manifest, quarantine, atomic commit.

`DatasetWriter` streams rows into shards as they come (memory stays flat however large the input), writes every
record that did not become a row to ``quarantine.jsonl``, checks that the counts reconcile, and only then renames the
finished temporary sibling into place. `load` reads a directory back as a `datasets.DatasetDict`. Writers write the
current schemas only; readers also read `prefdata.preference/1` directories, upgraded to /2 in memory (`storage.rows`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import SCHEMAS, V2_COLUMNS
from prefdata.storage.arrow_format import ShardWriter, dataset_info_json
from prefdata.storage.manifest import DIGEST, check_digest, file_sha256, manifest_digest, verify_directory
from prefdata.storage.manifest import read_manifest as read_manifest  # re-exported: readers import it from here
from prefdata.storage.publish import (
    MANIFEST,
    check_output_dir,
    is_output_error,
    output_error,
    output_lock,
    printable_path,
    publish_dir,
    temp_sibling,
    write_json_atomic,
)
from prefdata.storage.rows import python_rows, read_schema_id, upgrade_table

QUARANTINE = "quarantine.jsonl"
DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024
_BATCH_ROWS = 4096
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


def features_for(schema_id: str):
    """The `datasets.Features` of a schema, for callers that work in `datasets` (writing shards does not need it)."""
    from datasets import Features

    return Features.from_arrow_schema(SCHEMAS[schema_id])


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as they may be recorded: anything that looks like a credential is dropped, never written."""
    clean = {}
    for key, value in options.items():
        if any(word in key.lower() for word in _SECRET_WORDS) and key.lower() not in ("max_tokens", "tokenizer"):
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        clean[key] = value
    return clean


class SplitWriter:
    """Streams rows of one split into `data-XXXXX-of-NNNNN.arrow` shards in `datasets`' format (`arrow_format`)."""

    def __init__(self, directory: Path, name: str, schema_id: str, max_shard_bytes: int) -> None:
        self.directory = directory
        self.name = name
        self.schema = SCHEMAS[schema_id]
        self.max_shard_bytes = max_shard_bytes
        self.rows = 0
        self._columns: dict[str, list] = {n: [] for n in self.schema.names}
        self._buffered = 0
        self._shards: list[tuple[Path, int]] = []
        self._writer: ShardWriter | None = None
        self._shard_rows = 0
        self._shard_bytes = 0
        directory.mkdir(parents=True, exist_ok=False)

    def write(self, row: Mapping[str, Any]) -> None:
        """Buffer one row; the columns /2 added may be left out of ``row`` (null), every other one is required."""
        for name, column in self._columns.items():
            column.append(row.get(name) if name in V2_COLUMNS else row[name])
        self._buffered += 1
        if self._buffered >= _BATCH_ROWS:
            self._flush()

    def write_table(self, table: pa.Table) -> None:
        self._flush()
        self._write_arrow(table.select(self.schema.names).cast(self.schema))

    def _flush(self) -> None:
        if not self._buffered:
            return
        table = pa.Table.from_pydict(self._columns, schema=self.schema)
        self._columns = {n: [] for n in self.schema.names}
        self._buffered = 0
        self._write_arrow(table)

    def _write_arrow(self, table: pa.Table) -> None:
        if self._writer is None:
            path = self.directory / f"shard-{len(self._shards):05d}.arrow.tmp"
            self._writer = ShardWriter(path, self.schema)
            self._shards.append((path, 0))
            self._shard_rows = 0
            self._shard_bytes = 0
        self._writer.write_table(table)
        self._shard_rows += table.num_rows
        self._shard_bytes += table.nbytes
        self.rows += table.num_rows
        if self._shard_bytes >= self.max_shard_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._shards[-1] = (self._shards[-1][0], self._shard_rows)
            self._writer = None

    def close(self) -> dict[str, Any]:
        """Finish the shards, name them as `save_to_disk` does, write datasets' state files; return manifest info.

        The state files are written here, kept: `save_to_disk` re-batches the shards and leaves null fields out of
        ``dataset_info.json``, so its output is not byte-identical (`bench/infra.py` part b).
        """
        self._flush()
        if self._writer is None and not self._shards:  # an empty split still gets one (empty) shard
            self._write_arrow(self.schema.empty_table())
        self._close_shard()
        count = len(self._shards)
        shards = []
        for index, (tmp_path, rows) in enumerate(self._shards):
            final = self.directory / f"data-{index:05d}-of-{count:05d}.arrow"
            os.replace(tmp_path, final)
            shards.append({"file": final.name, "rows": rows, "bytes": final.stat().st_size, "sha256": file_sha256(final)})
        fingerprint = hashlib.sha256("".join(s["sha256"] for s in shards).encode()).hexdigest()[:16]
        state = {
            "_data_files": [{"filename": s["file"]} for s in shards],
            "_fingerprint": fingerprint,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": self.name,
        }
        (self.directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        (self.directory / "dataset_info.json").write_text(dataset_info_json(self.schema), encoding="utf-8")
        return {"rows": self.rows, "fingerprint": fingerprint, "shards": shards}


class DatasetWriter:
    """Writes one dataset directory atomically; use as a context manager (an exception leaves nothing behind).

    It holds `output_lock` on ``out`` from creation to `commit`/`abort` (one writer per output) and builds the
    directory in a temporary sibling; a full disk or an unwritable ``out`` ends the run with one line.

    The caller counts each input record with `count_in`; each record then either becomes rows (`write`) or is
    `quarantine`d. With ``count_rows_out=False`` (steps where one record can yield several rows, like a split) the
    caller reports what became of records with `count_out`. `commit` refuses to publish counts that do not reconcile.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        command: str,
        options: Mapping[str, Any] | None = None,
        schema_id: str = next(iter(SCHEMAS)),
        overwrite: bool = False,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        count_rows_out: bool = True,
    ) -> None:
        self.out = Path(out)
        self._held = contextlib.ExitStack()  # the output lock and the temporary sibling, released by commit/abort
        self._held.enter_context(output_lock(self.out, what="dataset"))
        try:
            check_output_dir(self.out, overwrite)
            self.tmp = self._held.enter_context(temp_sibling(self.out, what="dataset"))
            # backslashreplace: a lone surrogate in a quarantined record is written as its JSON escape, so the line
            # stays valid UTF-8 and reads back as the same record.
            self._quarantine = open(self.tmp / QUARANTINE, "w", encoding="utf-8", errors="backslashreplace")
        except BaseException as e:
            self._held.close()
            if is_output_error(e, self.out):
                raise output_error(e, self.out, "dataset") from None
            raise
        self.schema_id = schema_id
        self.command = command
        self.options = redact_options(options or {})
        self.max_shard_bytes = max_shard_bytes
        self.count_rows_out = count_rows_out
        self.records_in = 0
        self.records_out = 0
        self.reasons: Counter[str] = Counter()
        self.inputs: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._splits: dict[str, SplitWriter] = {}
        self.manifest: dict[str, Any] | None = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        self.abort()
        if is_output_error(exc, self.tmp, self.out):
            raise output_error(exc, self.out, "dataset") from None

    def add_input(self, path: str | os.PathLike) -> None:
        p = Path(path)
        self.inputs.append({"path": str(path), "sha256": file_sha256(p), "bytes": p.stat().st_size})

    def count_in(self, n: int = 1) -> None:
        self.records_in += n

    def count_out(self, n: int = 1) -> None:
        self.records_out += n

    def split(self, name: str) -> SplitWriter:
        if name not in self._splits:
            self._splits[name] = SplitWriter(self.tmp / name, name, self.schema_id, self.max_shard_bytes)
        return self._splits[name]

    def write(self, row: Mapping[str, Any], split: str = "train") -> None:
        self.split(split).write(row)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def quarantine(
        self,
        reason: str,
        message: str,
        record: Any,
        *,
        file: str | None = None,
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        entry: dict[str, Any] = {"file": file}
        if line is not None:
            entry["line"] = line
        if index is not None:
            entry["index"] = index
        entry.update({"reason": reason, "message": message, "record": record})
        self._quarantine.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        self.reasons[reason] += 1

    @property
    def quarantined(self) -> int:
        return sum(self.reasons.values())

    def commit(self) -> dict[str, Any]:
        """Close the shards, check the counts, write the manifest and publish; any failure removes the temporary
        directory and releases the lock (a full disk is one line)."""
        try:
            manifest = self._commit()
        except BaseException as e:
            self.abort()
            if is_output_error(e, self.tmp, self.out):
                raise output_error(e, self.out, "dataset") from None
            raise
        self._held.close()
        return manifest

    def _commit(self) -> dict[str, Any]:
        self._quarantine.close()
        splits = {name: writer.close() for name, writer in sorted(self._splits.items())}
        rows_out = sum(s["rows"] for s in splits.values())
        accounted = rows_out if self.count_rows_out else self.records_out
        if self.records_in != accounted + self.quarantined:
            raise RuntimeError(
                f"counts do not reconcile: {self.records_in} records in, {accounted} out, {self.quarantined} quarantined"
            )
        (self.tmp / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}), encoding="utf-8")
        from prefdata.contract.version import __version__

        counts: dict[str, Any] = {"records_in": self.records_in, "rows_out": rows_out}
        if not self.count_rows_out:
            counts["records_out"] = self.records_out
        counts["quarantined"] = self.quarantined
        counts["quarantined_by_reason"] = dict(sorted(self.reasons.items()))
        self.manifest = {
            "schema": self.schema_id,
            "prefdata_version": __version__,
            "command": self.command,
            "options": self.options,
            "inputs": self.inputs,
            "splits": splits,
            "counts": counts,
            **self.extra,
            "warnings": self.warnings,
        }
        self.manifest[DIGEST] = manifest_digest(self.manifest)
        write_json_atomic(self.tmp / MANIFEST, self.manifest)
        publish_dir(self.tmp, self.out)
        return self.manifest

    def abort(self) -> None:
        """Remove the temporary directory and release the output lock; the old ``out``, if any, is untouched."""
        if not self._quarantine.closed:
            self._quarantine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._held.close()


def _verified_shards(directory: str | os.PathLike, open_table: Callable[[str], Any]) -> tuple[dict[str, Any], dict]:
    """``(manifest, {split: [table, …]})``: every shard opened with ``open_table`` once `verify_directory` has found
    it as the manifest lists it, then checked for its rows and columns; the manifest's own checksum last.

    The shards are opened from the manifest's list (the root of trust), not from datasets' own ``state.json``. Each is
    hashed just before it is memory-mapped, so the one read from disk serves both (`bench/split.py`: the hash costs
    under 10% of a split)."""
    path = Path(directory)
    manifest = verify_directory(path, digest=False)  # checked after the shards' rows and columns, which say more
    schema = SCHEMAS[manifest["schema"]]
    splits: dict[str, list] = {}
    for name, split in manifest["splits"].items():
        tables = splits.setdefault(name, [])
        for shard in split["shards"]:
            shard_path = path / name / shard["file"]
            try:
                table = open_table(str(shard_path))
            except UnicodeEncodeError:  # pyarrow takes only UTF-8 paths
                raise PrefdataError("the path is not valid UTF-8, which Arrow cannot open; rename it",
                                    file=printable_path(shard_path)) from None
            except (OSError, pa.ArrowException) as e:
                raise PrefdataError(f"unreadable shard: {str(e).splitlines()[0]}", file=str(shard_path)) from None
            if table.num_rows != shard["rows"]:
                raise PrefdataError(f"shard holds {table.num_rows} rows, the manifest says {shard['rows']}: damaged",
                                    file=str(shard_path))
            if not table.schema.remove_metadata().equals(schema.remove_metadata()):
                raise PrefdataError(f"shard columns are not those of {manifest['schema']}", file=str(shard_path))
            tables.append(table)
    check_digest(manifest, str(path / MANIFEST))
    return manifest, splits


def _mapped_arrow(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return pa.ipc.open_stream(source).read_all()


def load_tables(directory: str | os.PathLike) -> dict[str, pa.Table]:
    """Every split as one memory-mapped Arrow table, verified as `load` verifies it, with `pyarrow` alone: a job that
    needs only the columns (`split`) never pays for importing `datasets` (~1.3 s of a split, `bench/split.py`)."""
    manifest, splits = _verified_shards(directory, _mapped_arrow)
    schema_id = manifest["schema"]
    empty = SCHEMAS[read_schema_id(schema_id)].empty_table()
    return {name: upgrade_table(pa.concat_tables(tables), schema_id) if tables else empty
            for name, tables in splits.items()}


def load(directory: str | os.PathLike):
    """Read a prefdata directory as a `datasets.DatasetDict` (memory-mapped; nothing is loaded into RAM), once every
    shard is verified (`_verified_shards`). A /1 directory is read as /2: its tables are upgraded in memory (the
    text columns stay mapped; only the new null columns and the message structs are built)."""
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable, MemoryMappedTable, concat_tables

    manifest, splits = _verified_shards(directory, MemoryMappedTable.from_file)
    schema_id = manifest["schema"]
    info = DatasetInfo(features=features_for(read_schema_id(schema_id)))

    def table(tables: list):
        mapped = concat_tables(tables)
        return mapped if read_schema_id(schema_id) == schema_id else InMemoryTable(upgrade_table(mapped.table,
                                                                                                 schema_id))

    return DatasetDict({name: Dataset(table(tables), info=info.copy(), split=name) for name, tables in splits.items()})


def iter_rows(directory: str | os.PathLike, split: str | None = None) -> Iterable[tuple[str, dict[str, Any]]]:
    """Stream ``(split, row)`` pairs of a directory batch by batch, in stored order (verified as `load` does); each
    row is the dict that was written (`python_rows`)."""
    dataset_dict = load(directory)
    if split is not None and split not in dataset_dict:
        raise PrefdataError(f"has no split {split!r} (it has {', '.join(dataset_dict)})", file=str(directory))
    for name in [split] if split else list(dataset_dict):
        dataset = dataset_dict[name]
        for batch in dataset.with_format("arrow").iter(batch_size=_BATCH_ROWS):
            for row in python_rows(batch):
                yield name, row
