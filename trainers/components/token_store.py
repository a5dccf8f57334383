"""The reading side of the token cache: an entry's ``tokens.arrow`` memory-mapped, each row a zero-copy numpy view.

Nothing is loaded up front, so every rank can open a 100,000-row entry in milliseconds and share the pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

TOKENS_FILE = "tokens.arrow"
TOKEN_IDS = pa.list_(pa.int32())  # a token column: one list of ids per row


def _view(buffer: pa.Buffer, dtype: Any, start: int, count: int) -> np.ndarray:
    """A read-only numpy view of part of an Arrow buffer (zero-copy; no pandas import as `to_numpy` would do)."""
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=start * np.dtype(dtype).itemsize)


class _Chunked:
    """Maps a row index to (chunk, index in chunk) for a column stored in several record batches."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._starts = np.cumsum([0] + [len(c) for c in column.chunks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        chunk = int(np.searchsorted(self._starts, i, side="right")) - 1
        return chunk, i - int(self._starts[chunk])


class TokenColumn(_Chunked):
    """Row ``i`` of a memory-mapped ``list<int32>`` column as a numpy view: no copy, nothing loaded up front."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        super().__init__(column)
        self._chunks = []
        for c in column.chunks:
            child = c.values
            offsets = _view(c.buffers()[1], np.int32, c.offset, len(c) + 1)
            values = _view(child.buffers()[1], np.int32, child.offset, len(child)) if len(child) else np.zeros(0, np.int32)
            self._chunks.append((offsets, values))

    def __getitem__(self, i: int) -> np.ndarray:
        chunk, j = self.locate(i)
        offsets, values = self._chunks[chunk]
        return values[offsets[j] : offsets[j + 1]]


class ScalarColumn(_Chunked):
    """Row ``i`` of a memory-mapped fixed-width column (``prompt_tokens``, ``margin``)."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        super().__init__(column)
        dtype = column.type.to_pandas_dtype()
        self._chunks = [_view(c.buffers()[1], dtype, c.offset, len(c)) for c in column.chunks]

    def __getitem__(self, i: int):
        chunk, j = self.locate(i)
        return self._chunks[chunk][j]


class TokenCache:
    """One phase of one split, tokenised: a map-style dataset of dicts of numpy arrays / numbers."""

    def __init__(self, directory: Path, built: bool) -> None:
        self.directory = directory
        self.built = built
        self.info = json.loads((directory / "info.json").read_text(encoding="utf-8"))
        self.table = pa.ipc.open_file(pa.memory_map(str(directory / TOKENS_FILE), "r")).read_all()
        self.columns = {
            f.name: TokenColumn(self.table[f.name]) if f.type == TOKEN_IDS else ScalarColumn(self.table[f.name])
            for f in self.table.schema
        }

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {name: column[i] for name, column in self.columns.items()}
