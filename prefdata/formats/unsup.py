"""Unsupervised text for the PPO ptx term (`prefdata.unsup/1`): a ``text`` field, or a block of a .txt file."""

from __future__ import annotations

from typing import Any

from prefdata.contract.row import make_unsup_row
from prefdata.formats.common import Format, Record, leftover_meta, text


def parse_text(record: Record, source: str) -> dict[str, Any]:
    return make_unsup_row(text(record, "text"), source=source, meta=leftover_meta(record, {"text"}))


FORMATS = [
    Format("unsup-text", "unsup", frozenset({"text"}), parse_text,
           "unsupervised text: a text field (JSONL, JSON, CSV, Parquet) or blank-line-separated blocks (.txt)"),
]
