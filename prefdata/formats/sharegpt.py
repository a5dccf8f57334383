"""ShareGPT-style conversations (the LLaMA-Factory / FastChat convention).

``conversations: [{from, value}]`` with ``from`` in human/gpt/system (a system turn may sit inside the conversation, or
in a top-level ``system`` key); preference rows add ``chosen``/``rejected`` as ``{from, value}`` objects or plain
strings.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.row import Message, make_row
from prefdata.formats.common import (
    Format,
    Record,
    leftover_meta,
    messages,
    optional_text,
    reply,
    require,
)


def _with_system(conversation: list[Message], record: Record) -> list[Message]:
    system = optional_text(record, "system")
    if system and not (conversation and conversation[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *conversation]
    return conversation


def parse_sharegpt(record: Record, source: str) -> dict[str, Any]:
    """A preference row when ``chosen``/``rejected`` are present; otherwise the last gpt turn is the demonstration."""
    conversation = _with_system(messages(require(record, "conversations"), "conversations"), record)
    meta = leftover_meta(record, {"conversations", "chosen", "rejected", "system"})
    if "chosen" in record or "rejected" in record:
        chosen = reply(require(record, "chosen"), "chosen")
        rejected = reply(require(record, "rejected"), "rejected")
        return make_row(conversation, chosen, rejected, source=source, meta=meta)
    if conversation and conversation[-1]["role"] == "assistant":
        return make_row(conversation[:-1], conversation[-1]["content"], source=source, meta=meta)
    return make_row(conversation, source=source, meta=meta)


FORMATS = [
    Format("sharegpt", "preference", frozenset({"conversations"}), parse_sharegpt,
           "ShareGPT: conversations [{from, value}] (the last gpt turn is the demonstration)"),
    Format("sharegpt-preference", "preference", frozenset({"conversations", "chosen", "rejected"}), parse_sharegpt,
           "ShareGPT preference: conversations [{from, value}], chosen, rejected ({from, value} or strings)"),
]
