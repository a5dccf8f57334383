"""TRL's dataset formats (trl `data_utils`): standard (strings) and conversational (lists of messages).

Preference: explicit prompt ``{prompt, chosen, rejected}`` or implicit prompt ``{chosen, rejected}`` (the prompt is the
shared beginning of both). Standard implicit rows are HH-RLHF text and go through `prefdata.formats.hh.split_pair`.
Also: prompt-only ``{prompt}``, prompt-completion ``{prompt, completion}`` and language modelling ``{messages}``.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, make_row
from prefdata.formats.common import (
    Format,
    Record,
    is_listy,
    leftover_meta,
    messages,
    reply,
    require,
    score,
    text,
    user_prompt,
)
from prefdata.formats.dschat import looks_rendered
from prefdata.formats.hh import split_pair

_SCORES = frozenset({"chosen_score", "rejected_score"})


def _prompt(value: Any, field: str = "prompt") -> list[Message]:
    """A standard prompt is one user message; a conversational prompt is already a list of messages."""
    if is_listy(value):
        return messages(value, field)
    if not isinstance(value, str):
        return messages(value, field)  # raises the type error with the field name
    return user_prompt(value)


def _scores(record: Record) -> dict[str, float | None]:
    return {"chosen_score": score(record, "chosen_score"), "rejected_score": score(record, "rejected_score")}


def parse_explicit(record: Record, source: str) -> dict[str, Any]:
    """``{prompt, chosen, rejected}``, standard or conversational: the prompt is given, the replies are final turns."""
    used = {"prompt", "chosen", "rejected"} | _SCORES
    prompt = _prompt(require(record, "prompt"))
    chosen, rejected = reply(require(record, "chosen"), "chosen"), reply(require(record, "rejected"), "rejected")
    return make_row(prompt, chosen, rejected, source=source, **_scores(record), meta=leftover_meta(record, used))


def parse_standard_implicit(record: Record, source: str) -> dict[str, Any]:
    """``{chosen, rejected}`` as two full HH transcripts: the prompt is their common beginning."""
    prompt, chosen, rejected = split_pair(text(record, "chosen"), text(record, "rejected"))
    return make_row(prompt, chosen, rejected, source=source, **_scores(record),
                    meta=leftover_meta(record, {"chosen", "rejected"} | _SCORES))


def parse_conversational_implicit(record: Record, source: str) -> dict[str, Any]:
    """``{chosen, rejected}`` as two full conversations that differ only in the final assistant message."""
    chosen = messages(require(record, "chosen"), "chosen")
    rejected = messages(require(record, "rejected"), "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    for field, conversation in (("chosen", chosen), ("rejected", rejected)):
        if len(conversation) == shared:
            raise RowError("identical_pair" if chosen == rejected else "missing_field",
                           "no final reply after the shared prompt", field)
        if len(conversation) != shared + 1 or conversation[-1]["role"] != "assistant":
            raise RowError("diverges_before_assistant",
                           "the conversations differ before their final assistant message", field)
    return make_row(chosen[:shared], chosen[-1]["content"], rejected[-1]["content"], source=source, **_scores(record),
                    meta=leftover_meta(record, {"chosen", "rejected"} | _SCORES))


def parse_prompt_only(record: Record, source: str) -> dict[str, Any]:
    return make_row(_prompt(require(record, "prompt")), source=source, meta=leftover_meta(record, {"prompt"}))


def parse_prompt_completion(record: Record, source: str) -> dict[str, Any]:
    return make_row(_prompt(require(record, "prompt")), reply(require(record, "completion"), "completion"),
                    source=source, meta=leftover_meta(record, {"prompt", "completion"}))


def parse_messages(record: Record, source: str) -> dict[str, Any]:
    """``{messages}``: ending with an assistant turn it is a demonstration, else a prompt."""
    conversation = messages(require(record, "messages"), "messages")
    meta = leftover_meta(record, {"messages"})
    if conversation and conversation[-1]["role"] == "assistant":
        return make_row(conversation[:-1], conversation[-1]["content"], source=source, meta=meta)
    return make_row(conversation, source=source, meta=meta)


def _standard_prompt(record: Record) -> bool:
    prompt = record.get("prompt")
    return isinstance(prompt, str) and not is_listy(prompt) and not looks_rendered(prompt)


FORMATS = [
    Format("trl-standard", "preference", frozenset({"prompt", "chosen", "rejected"}), parse_explicit,
           "TRL standard preference, explicit prompt: prompt, chosen, rejected strings", accepts=_standard_prompt, number_fields=_SCORES),
    Format("trl-conversational", "preference", frozenset({"prompt", "chosen", "rejected"}), parse_explicit,
           "TRL conversational preference, explicit prompt: prompt, chosen, rejected as lists of messages",
           accepts=lambda r: is_listy(r.get("prompt")), number_fields=_SCORES),
    Format("trl-implicit", "preference", frozenset({"chosen", "rejected"}), parse_standard_implicit,
           "TRL standard preference, implicit prompt: chosen, rejected full HH-RLHF transcripts",
           accepts=lambda r: not is_listy(r.get("chosen")), number_fields=_SCORES),
    Format("trl-conversational-implicit", "preference", frozenset({"chosen", "rejected"}),
           parse_conversational_implicit,
           "TRL conversational preference, implicit prompt: chosen, rejected full conversations",
           accepts=lambda r: is_listy(r.get("chosen")), number_fields=_SCORES),
    Format("trl-prompt-only", "preference", frozenset({"prompt"}), parse_prompt_only,
           "TRL prompt-only: prompt (string or messages), a prompt for PPO"),
    Format("trl-prompt-completion", "preference", frozenset({"prompt", "completion"}), parse_prompt_completion,
           "TRL prompt-completion: prompt, completion (a demonstration)",
           accepts=lambda r: "label" not in r),  # {prompt, completion, label} is unpaired KTO data: not a demonstration
    Format("trl-messages", "preference", frozenset({"messages"}), parse_messages,
           "TRL language modelling / SFT: messages (a demonstration when it ends with an assistant turn)"),
]
