"""ShareGPT-style conversations and Alpaca instructions (the LLaMA-Factory / FastChat conventions).

ShareGPT: ``conversations: [{from, value}]`` with ``from`` in human/gpt/system (a system turn may sit inside the
conversation, or in a top-level ``system`` key); preference rows add ``chosen``/``rejected`` as ``{from, value}``
objects or plain strings. Alpaca: ``instruction`` (+ optional ``input``) -> ``output``, or -> ``chosen``/``rejected``.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, make_row
from prefdata.formats.common import (
    Format,
    Record,
    as_text,
    leftover_meta,
    messages,
    optional_text,
    reply,
    require,
    text,
)

ALPACA_JOIN = "\n\n"


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


def _alpaca_prompt(record: Record) -> list[Message]:
    instruction = text(record, "instruction")
    extra = optional_text(record, "input")
    prompt: list[Message] = []
    system = optional_text(record, "system")
    if system:
        prompt.append({"role": "system", "content": system})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise RowError("schema_violation", "is not a list of [instruction, response] pairs", "history")
    for i, turn in enumerate(history):
        if not (isinstance(turn, list) and len(turn) == 2):
            raise RowError("schema_violation", "is not an [instruction, response] pair", f"history[{i}]")
        prompt.append({"role": "user", "content": as_text(turn[0], f"history[{i}][0]")})
        prompt.append({"role": "assistant", "content": as_text(turn[1], f"history[{i}][1]")})
    prompt.append({"role": "user", "content": f"{instruction}{ALPACA_JOIN}{extra}" if extra else instruction})
    return prompt


_ALPACA_KEYS = {"instruction", "input", "system", "history"}


def parse_alpaca(record: Record, source: str) -> dict[str, Any]:
    return make_row(_alpaca_prompt(record), text(record, "output"), source=source,
                    meta=leftover_meta(record, _ALPACA_KEYS | {"output"}))


def parse_alpaca_preference(record: Record, source: str) -> dict[str, Any]:
    return make_row(_alpaca_prompt(record), reply(require(record, "chosen"), "chosen"),
                    reply(require(record, "rejected"), "rejected"), source=source,
                    meta=leftover_meta(record, _ALPACA_KEYS | {"chosen", "rejected"}))


FORMATS = [
    Format("sharegpt", "preference", frozenset({"conversations"}), parse_sharegpt,
           "ShareGPT: conversations [{from, value}] (the last gpt turn is the demonstration)"),
    Format("sharegpt-preference", "preference", frozenset({"conversations", "chosen", "rejected"}), parse_sharegpt,
           "ShareGPT preference: conversations [{from, value}], chosen, rejected ({from, value} or strings)"),
    Format("alpaca", "preference", frozenset({"instruction", "output"}), parse_alpaca,
           "Alpaca: instruction, optional input, output (a demonstration; input joined after a blank line)"),
    Format("alpaca-preference", "preference", frozenset({"instruction", "chosen", "rejected"}),
           parse_alpaca_preference, "Alpaca preference: instruction, optional input, chosen, rejected"),
]
