"""Stored tables as the current contract: /1 tables upgraded to /2 in memory, and rows read back as the dicts written.

Why here and not in each job: every reader (`dataset.load`, `load_tables`, `iter_rows`, export, validate, the
trainers) sees the same rows, whichever version wrote the directory. A /1 table gets null ``chosen_turns``,
``rejected_turns`` and ``label`` columns and the widened message struct; no id changes, since /2 hashes a row /1 could
hold exactly as /1 did. Arrow stores a message's unset tool fields as nulls; `python_rows` leaves them out again, so a
prompt read back compares equal to the prompt `make_row` returned.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from prefdata.contract.row import (
    MESSAGE_TYPE,
    MESSAGE_V1_TYPE,
    PREFERENCE_SCHEMA,
    PREFERENCE_SCHEMA_ID,
    PREFERENCE_V1_SCHEMA_ID,
    SCHEMAS,
    V2_COLUMNS,
)
from prefdata.contract.rules import TOOL_FIELDS

_MESSAGE_COLUMNS = ("prompt", "chosen_turns", "rejected_turns")


def read_schema_id(schema_id: str) -> str:
    """The schema a directory of ``schema_id`` is read as: /1 preference rows are read as /2."""
    return PREFERENCE_SCHEMA_ID if schema_id == PREFERENCE_V1_SCHEMA_ID else schema_id


def _with_message_type(messages: pa.Array, message_type: pa.StructType) -> pa.Array:
    """A ``list<struct>`` array with its messages rebuilt as ``message_type``: fields it lacks are null, fields
    ``message_type`` lacks are dropped. Built from the child arrays (zero-copy) rather than with a struct cast, which
    pyarrow learnt to widen only in later versions than the `pyarrow>=15` prefdata supports."""
    values = messages.values  # an IPC-read list's values are never sliced: its offsets index them directly
    children = [values.field(f.name) if values.type.get_field_index(f.name) >= 0 else pa.nulls(len(values), f.type)
                for f in message_type]
    struct = pa.StructArray.from_arrays(children, fields=list(message_type),
                                        mask=values.is_null() if values.null_count else None)
    if not messages.null_count:
        return pa.ListArray.from_arrays(messages.offsets, struct)
    offsets = pa.array(messages.offsets.to_numpy(), pa.int32())  # unsliced: Arrow takes a null mask with those only
    return pa.ListArray.from_arrays(offsets, struct, mask=messages.is_null())


def _chunks_with_message_type(column: pa.ChunkedArray, message_type: pa.StructType) -> pa.ChunkedArray:
    return pa.chunked_array([_with_message_type(chunk, message_type) for chunk in column.chunks],
                            pa.list_(message_type))


def upgrade_table(table: pa.Table, schema_id: str) -> pa.Table:
    """A table of ``schema_id`` as `read_schema_id` reads it: a /1 table gains the /2 columns (all null) and the /2
    message struct; any other table is returned as it is."""
    if schema_id != PREFERENCE_V1_SCHEMA_ID:
        return table
    columns = {name: table.column(name) for name in SCHEMAS[PREFERENCE_V1_SCHEMA_ID].names}
    columns["prompt"] = _chunks_with_message_type(columns["prompt"], MESSAGE_TYPE)
    for name in V2_COLUMNS:
        columns[name] = pa.nulls(table.num_rows, PREFERENCE_SCHEMA.field(name).type)
    return pa.Table.from_arrays(list(columns.values()), schema=PREFERENCE_SCHEMA)


def _narrowed(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """``batch`` with each message column whose tool fields are all null cut down to role and content (Arrow-side,
    no Python per message): the rows /1 could hold, nearly all of them, then need no clean-up."""
    columns = list(batch.columns)
    for index, field in enumerate(batch.schema):
        if field.name not in _MESSAGE_COLUMNS or field.type != pa.list_(MESSAGE_TYPE):
            continue
        column = columns[index]
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        if all(chunk.values.field(key).null_count == len(chunk.values) for chunk in chunks for key in TOOL_FIELDS):
            narrow = [_with_message_type(chunk, MESSAGE_V1_TYPE) for chunk in chunks]
            columns[index] = pa.chunked_array(narrow, pa.list_(MESSAGE_V1_TYPE)) \
                if isinstance(column, pa.ChunkedArray) else narrow[0]
    return type(batch).from_arrays(columns, names=batch.schema.names)


def python_rows(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """The rows of a stored batch as Python dicts, each message with only the fields that are set (as written)."""
    batch = _narrowed(batch)
    rows = batch.to_pylist()
    wide = [name for name in _MESSAGE_COLUMNS
            if name in batch.schema.names and batch.schema.field(name).type == pa.list_(MESSAGE_TYPE)]
    for row in rows:
        for name in wide:
            messages = row[name]
            if messages is not None:
                row[name] = [message if message is None else _set_fields(message) for message in messages]
    return rows


def _set_fields(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if value is not None or key in ("role", "content")}
