"""A token cache entry on disk: the columns of each phase, the checks an entry passes before it is used, and its
``tokens.arrow`` memory-mapped, each row a zero-copy numpy view.

Nothing is loaded up front, so every rank can open a 100,000-row entry in milliseconds and share the pages. Building
an entry is `trainers.components.tokens`'s work.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from prefdata.contract.errors import PrefdataError
from prefdata.storage.dataset import file_sha256
from prefdata.storage.home import token_cache_dir

TOKENS_FILE = "tokens.arrow"
TOKEN_IDS = pa.list_(pa.int32())  # a token column: one list of ids per row
CACHE_FORMAT = 3  # 3: rm rows carry their prompt token counts; 2: keyed by the shards' sha256, entries record their own sha256
LAYOUT = {  # the columns of each phase's entry (see `trainers.components.tokens`)
    "sft": pa.schema([("input_ids", TOKEN_IDS), ("prompt_tokens", pa.int32())]),
    "rm": pa.schema([("chosen_input_ids", TOKEN_IDS), ("rejected_input_ids", TOKEN_IDS), ("margin", pa.float32()),
                     ("chosen_prompt_tokens", pa.int32()), ("rejected_prompt_tokens", pa.int32())]),
    "kto": pa.schema([("input_ids", TOKEN_IDS), ("prompt_tokens", pa.int32()), ("label", pa.int8())]),
    "ppo": pa.schema([("prompt_input_ids", TOKEN_IDS)]),
    "ptx": pa.schema([("input_ids", TOKEN_IDS)]),
}


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


class DamagedEntry(Exception):
    """A cache entry that is not what its ``info.json`` says (the message says why); it is rebuilt, never used."""


def open_verified(entry: Path, key: str, phase: str) -> TokenCache:
    """Open ``entry`` once it proves sound: a sane ``info.json`` for this key, ``tokens.arrow`` of the recorded size and
    sha256, the phase's columns and the recorded row count. Anything else raises `DamagedEntry`."""
    try:
        info = json.loads((entry / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DamagedEntry(f"unreadable info.json: {getattr(e, 'strerror', None) or e}") from None
    recorded = info.get("tokens") if isinstance(info, dict) else None
    if not isinstance(recorded, dict) or info.get("format") != CACHE_FORMAT or info.get("key") != key:
        raise DamagedEntry("info.json is not this entry's")
    tokens = entry / TOKENS_FILE
    try:
        size = tokens.stat().st_size
    except OSError:
        raise DamagedEntry(f"{TOKENS_FILE} is missing") from None
    if size != recorded.get("bytes"):
        raise DamagedEntry(f"{TOKENS_FILE} is {size} bytes, info.json says {recorded.get('bytes')}")
    if file_sha256(tokens) != recorded.get("sha256"):
        raise DamagedEntry(f"{TOKENS_FILE} checksum differs from info.json")
    try:
        cache = TokenCache(entry, built=False)
    except (OSError, ValueError, pa.ArrowException) as e:  # the sha256 matched: only a forged info.json gets here
        raise DamagedEntry(f"unreadable {TOKENS_FILE}: {e}") from None
    counts = info.get("counts")
    if cache.table.schema != LAYOUT[phase] or not isinstance(counts, dict) or len(cache) != counts.get("rows_out"):
        raise DamagedEntry(f"{TOKENS_FILE} does not hold what info.json says")
    return cache


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The cache directory, created; one line naming it when it cannot be (a regular file in its place is the user's
    and is never removed)."""
    root = Path(cache_dir) if cache_dir is not None else token_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = "is not a directory" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise PrefdataError(f"token cache dir {reason}; give --cache-dir DIR", file=str(root)) from None
    return root


def discard(entry: Path) -> None:
    """Move a damaged entry out of the way (the caller holds the entry's lock), then delete it."""
    if entry.is_dir() and not entry.is_symlink():
        doomed = entry.with_name(f".{entry.name}.damaged-{os.getpid()}")
        os.replace(entry, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
