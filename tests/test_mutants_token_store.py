"""Tests that kill mutants of `trainers/components/token_store.py` (issue #15): the row index over several record
batches (chunk boundaries, empty chunks, slices that start mid-buffer, out-of-range rows) and an entry opened from
its files, each expected row written out by hand.

Equivalent survivor: ``np.zeros(1, np.int32)`` for ``np.zeros(0, np.int32)`` as the values of a chunk of empty lists
(its offsets are all 0, so no row ever slices past the first value).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from trainers.components.token_store import TOKEN_IDS, TOKENS_FILE, ScalarColumn, TokenCache, TokenColumn


def token_chunks() -> pa.ChunkedArray:
    """Rows [1,2] [] [3] | (no rows) | [4,5,6] [] (a slice starting at row 1 of its array) | [] (only empty lists)."""
    sliced = pa.array([[9, 9], [4, 5, 6], []], type=TOKEN_IDS).slice(1)
    return pa.chunked_array([pa.array([[1, 2], [], [3]], type=TOKEN_IDS), pa.array([], type=TOKEN_IDS), sliced,
                             pa.array([[]], type=TOKEN_IDS)], type=TOKEN_IDS)


def test_token_rows_across_chunks_slices_and_empty_chunks():
    column = TokenColumn(token_chunks())
    assert len(column) == 6
    assert [column[i].tolist() for i in range(6)] == [[1, 2], [], [3], [4, 5, 6], [], []]
    assert column[3].dtype == np.int32 and column[5].dtype == np.int32


def test_a_chunk_of_empty_lists_may_have_no_values_buffer():
    """Arrow lets a length-0 array leave its data buffer out (None), as some writers do."""
    no_buffer = pa.Array.from_buffers(pa.int32(), 0, [None, None])
    empties = pa.ListArray.from_arrays(pa.array([0, 0, 0], pa.int32()), no_buffer)
    column = TokenColumn(pa.chunked_array([empties]))
    assert [column[i].tolist() for i in range(2)] == [[], []]
    assert column[1].dtype == np.int32


@pytest.mark.parametrize("row", [-1, 6, 7])
def test_a_row_outside_the_column_is_an_index_error(row):
    with pytest.raises(IndexError) as e:
        TokenColumn(token_chunks())[row]
    assert e.value.args == (row,)  # names the row asked for


def test_scalar_rows_across_chunks_and_a_slice():
    margins = pa.chunked_array([pa.array([0.5], pa.float32()), pa.array([], pa.float32()),
                                pa.array([7.0, 1.25, -2.0], pa.float32()).slice(1)])
    column = ScalarColumn(margins)
    assert len(column) == 3
    assert [float(column[i]) for i in range(3)] == [0.5, 1.25, -2.0]
    with pytest.raises(IndexError):
        column[3]
    counts = ScalarColumn(pa.chunked_array([pa.array([3, 4], pa.int32()), pa.array([5], pa.int32())]))
    assert [int(counts[i]) for i in range(3)] == [3, 4, 5]


def test_an_entry_is_opened_from_its_info_and_arrow_file(tmp_path: Path):
    schema = pa.schema([("input_ids", TOKEN_IDS), ("prompt_tokens", pa.int32()), ("margin", pa.float32())])
    (tmp_path / "info.json").write_text(json.dumps({"rows": 3}), encoding="utf-8")
    with pa.OSFile(str(tmp_path / TOKENS_FILE), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(pa.record_batch([pa.array([[1, 2, 3]], TOKEN_IDS), pa.array([1], pa.int32()),
                                            pa.array([0.5], pa.float32())], schema=schema))
        writer.write_batch(pa.record_batch([pa.array([[4], [5, 6]], TOKEN_IDS), pa.array([0, 2], pa.int32()),
                                            pa.array([1.5, -1.0], pa.float32())], schema=schema))
    cache = TokenCache(tmp_path, built=True)
    assert cache.built is True and cache.directory == tmp_path and cache.info == {"rows": 3}
    assert len(cache) == 3
    rows = [cache[i] for i in range(3)]
    assert [sorted(r) for r in rows] == [["input_ids", "margin", "prompt_tokens"]] * 3
    assert [r["input_ids"].tolist() for r in rows] == [[1, 2, 3], [4], [5, 6]]
    assert [int(r["prompt_tokens"]) for r in rows] == [1, 0, 2]
    assert [float(r["margin"]) for r in rows] == [0.5, 1.5, -1.0]
    assert isinstance(cache.columns["input_ids"], TokenColumn)
    assert isinstance(cache.columns["margin"], ScalarColumn)
    assert TokenCache(tmp_path, built=False).built is False
