"""Shards and state files in `datasets`' `save_to_disk` format, written with pyarrow alone.

Why hand-written: `datasets.arrow_writer.ArrowWriter` and `DatasetInfo` were the only reason the import/download path
imported `datasets` (~1.5 s of CPU at every start, most of a small import; `bench/import_hh.py --whole-process`).
What `datasets` writes is small and fixed: an Arrow IPC stream whose schema carries ``{"huggingface": <features JSON>}``,
record batches of at most `WRITER_BATCH_ROWS` rows, and a `DatasetInfo` with only its features set.
`tests/test_storage_arrow_format.py` compares every byte with what the installed `datasets` writes, so a version
that changes its format fails there instead of drifting silently.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

# datasets.config.DEFAULT_MAX_BATCH_SIZE: the record-batch size ArrowWriter uses for features without images/audio.
WRITER_BATCH_ROWS = 1000
# The `datasets` feature type name of each Arrow type the contract's schemas use.
_VALUE_DTYPES = {pa.string(): "string", pa.float64(): "float64", pa.bool_(): "bool"}
# `DatasetInfo(features=...)` as `dataclasses.asdict` spells it, all but the features (which `dataset_info` adds).
_EMPTY_INFO = {
    "builder_name": None, "citation": "", "config_name": None, "dataset_name": None, "dataset_size": None,
    "description": "", "download_checksums": None, "download_size": None, "homepage": "", "license": "",
    "post_processed": None, "post_processing_size": None, "size_in_bytes": None, "splits": None,
    "supervised_keys": None, "version": None,
}


def features_json(data_type: pa.DataType | pa.Schema, *, defaults: bool) -> Any:
    """The `datasets` features of an Arrow type or schema, as JSON values.

    ``defaults=False`` is the spelling of the shard metadata (datasets' own `asdict` leaves default fields out);
    ``defaults=True`` that of ``dataset_info.json`` (`dataclasses.asdict`: ``"id": null``, a list's ``"length": -1``).
    """
    if isinstance(data_type, pa.Schema) or pa.types.is_struct(data_type):
        return {field.name: features_json(field.type, defaults=defaults) for field in data_type}
    if pa.types.is_list(data_type):
        extra = {"length": -1, "id": None} if defaults else {}
        return {"feature": features_json(data_type.value_type, defaults=defaults), **extra, "_type": "List"}
    if data_type in _VALUE_DTYPES:
        return {"dtype": _VALUE_DTYPES[data_type], **({"id": None} if defaults else {}), "_type": "Value"}
    raise TypeError(f"no datasets feature spelling for Arrow type {data_type} (add it to _VALUE_DTYPES and the test)")


def shard_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the metadata `ArrowWriter` puts on every shard (read back by `load_from_disk`)."""
    metadata = {"info": {"features": features_json(schema, defaults=False)}}
    return schema.with_metadata({"huggingface": json.dumps(metadata)})


def dataset_info_json(schema: pa.Schema) -> str:
    """The text of ``dataset_info.json``: `DatasetInfo(features=...)` with its keys sorted, indented by 2."""
    info = {**_EMPTY_INFO, "features": features_json(schema, defaults=True)}
    return json.dumps({key: info[key] for key in sorted(info)}, indent=2)


class ShardWriter:
    """One ``.arrow`` shard: an IPC stream written as `ArrowWriter.write_table` + `finalize` write it."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema) -> None:
        try:
            self._sink = pa.OSFile(os.fspath(path), "wb")
        except UnicodeEncodeError:  # pyarrow opens UTF-8 paths only: a non-UTF-8 --out goes through Python's file
            self._sink = pa.PythonFile(open(path, "wb"), mode="w")
        self._stream = pa.ipc.new_stream(self._sink, shard_schema(schema))

    def write_table(self, table: pa.Table) -> None:
        """Write ``table`` (already of the shard's schema) in batches of `WRITER_BATCH_ROWS`, chunks combined first
        as `ArrowWriter` does, so batch boundaries do not depend on how the table was built."""
        self._stream.write_table(table.combine_chunks(), max_chunksize=WRITER_BATCH_ROWS)

    def close(self) -> None:
        self._stream.close()
        self._sink.close()
