"""Alpaca instructions (the Stanford Alpaca / LLaMA-Factory convention).

``instruction`` (+ optional ``input``, joined after a blank line) -> ``output`` (a demonstration), or -> ``chosen``/
``rejected`` (a pair); an optional ``system`` and a ``history`` of earlier ``[instruction, response]`` turns come first.
LLaMA-Factory's KTO rows add ``kto_tag`` to an ``output`` row: an unpaired row, never a demonstration.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, make_row
from prefdata.formats.common import (
    LABEL_KEYS,
    Format,
    Record,
    as_text,
    leftover_meta,
    optional_text,
    reply,
    reply_row,
    require,
    text,
)

ALPACA_JOIN = "\n\n"


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
    return reply_row(_alpaca_prompt(record), text(record, "output"), record, source, _ALPACA_KEYS | {"output"})


def parse_alpaca_preference(record: Record, source: str) -> dict[str, Any]:
    return make_row(_alpaca_prompt(record), reply(require(record, "chosen"), "chosen"),
                    reply(require(record, "rejected"), "rejected"), source=source,
                    meta=leftover_meta(record, _ALPACA_KEYS | {"chosen", "rejected"}))


FORMATS = [
    Format("alpaca", "preference", frozenset({"instruction", "output"}), parse_alpaca,
           "Alpaca: instruction, optional input, output (a demonstration; input joined after a blank line; with "
           "kto_tag an unpaired KTO row)", bool_fields=frozenset(LABEL_KEYS), schema="alpaca"),
    Format("alpaca-preference", "preference", frozenset({"instruction", "chosen", "rejected"}),
           parse_alpaca_preference, "Alpaca preference: instruction, optional input, chosen, rejected",
           schema="alpaca"),
]
