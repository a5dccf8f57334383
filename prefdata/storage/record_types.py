"""What a reader yields: a record with where it was found, or a defect of that one record (to be quarantined)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefdata.contract.nesting import MAX_DEPTH

TOO_DEEP_MESSAGE = f"arrays/objects nested deeper than {MAX_DEPTH} levels"


@dataclass(frozen=True)
class Record:
    file: str
    index: int  # 0-based position among the file's records
    line: int | None  # 1-based line where the record starts (None for Parquet)
    value: Any


@dataclass(frozen=True)
class BadRecord:
    file: str
    index: int
    line: int | None
    reason: str
    message: str
    raw: Any


def too_large(size: int, max_bytes: int) -> str:
    return f"{size} bytes, more than the limit of {max_bytes}"
