"""ShareGPT-style conversations (the LLaMA-Factory / FastChat convention).

``conversations: [{from, value}]`` with ``from`` in human/gpt/system (a system turn may sit inside the conversation, or
in a top-level ``system`` key) and LLaMA-Factory's tool turns: ``function_call`` (the assistant calls a tool; the value
is the call as JSON) and ``observation`` (the tool's result). Preference rows (LLaMA-Factory "ranking") add ``chosen``/
``rejected`` as one ``{from, value}`` object each or plain strings; KTO rows add ``kto_tag`` (or ``label``). The tool
descriptions (``tools``) and any other key are kept in ``meta``.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.row import Message
from prefdata.formats.common import (
    LABEL_KEYS,
    Format,
    Record,
    conversation_row,
    leftover_meta,
    messages,
    optional_text,
    pair_row,
    reply,
    require,
)


def _with_system(conversation: list[Message], record: Record) -> list[Message]:
    system = optional_text(record, "system")
    if system and not (conversation and conversation[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *conversation]
    return conversation


def parse_sharegpt(record: Record, source: str) -> dict[str, Any]:
    """A preference row when ``chosen``/``rejected`` are present; otherwise what follows the last human turn is the
    demonstration (an unpaired row when ``kto_tag`` labels it); an empty last gpt turn marks a prompt without one."""
    conversation = _with_system(messages(require(record, "conversations"), "conversations"), record)
    used = {"conversations", "chosen", "rejected", "system"}
    if "chosen" in record or "rejected" in record:
        chosen = reply(require(record, "chosen"), "chosen")
        rejected = reply(require(record, "rejected"), "rejected")
        return pair_row(conversation, chosen, rejected, source, meta=leftover_meta(record, used))
    if conversation and conversation[-1] == {"role": "assistant", "content": ""}:
        conversation = conversation[:-1]  # LLaMA-Factory's empty answer: a prompt, as its ppo and predict stages read it
    return conversation_row(conversation, record, source, used)


FORMATS = [
    Format("sharegpt", "preference", frozenset({"conversations"}), parse_sharegpt,
           "ShareGPT / LLaMA-Factory: conversations [{from, value}] with function_call and observation turns (what "
           "follows the last human turn is the demonstration; with kto_tag an unpaired KTO row)",
           bool_fields=frozenset(LABEL_KEYS), schema="sharegpt"),
    Format("sharegpt-preference", "preference", frozenset({"conversations", "chosen", "rejected"}), parse_sharegpt,
           "ShareGPT / LLaMA-Factory ranking: conversations [{from, value}], chosen, rejected ({from, value} or "
           "strings)", schema="sharegpt"),
]
