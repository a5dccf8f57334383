"""TRL's dataset formats (trl `data_utils`): standard (strings) and conversational (lists of messages).

Preference: explicit prompt ``{prompt, chosen, rejected}`` or implicit prompt ``{chosen, rejected}`` (the prompt is the
shared beginning of both). Standard implicit rows are HH-RLHF text and go through `prefdata.formats.hh.split_pair`.
Also: prompt-only ``{prompt}``, prompt-completion ``{prompt, completion}``, unpaired preference ``{prompt, completion,
label}`` (KTO: one reply and a verdict on it) and language modelling ``{messages}``. Conversational replies may be
several messages (tool calls, their results, then the answer): they are kept as turns.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, make_row
from prefdata.formats.common import (
    LABEL_KEYS,
    Format,
    Record,
    conversation_row,
    is_listy,
    leftover_meta,
    messages,
    pair_row,
    reply,
    reply_row,
    require,
    score,
    text,
    user_prompt,
)
from prefdata.formats.dschat import looks_rendered
from prefdata.formats.hh import split_pair

_SCORES = frozenset({"chosen_score", "rejected_score"})
_LABELS = frozenset(LABEL_KEYS)


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
    """``{prompt, chosen, rejected}``, standard or conversational: the prompt is given, then each reply (a string, or
    messages: one answer, or tool calls, their results and the answer)."""
    used = {"prompt", "chosen", "rejected"} | _SCORES
    prompt = _prompt(require(record, "prompt"))
    chosen, rejected = reply(require(record, "chosen"), "chosen"), reply(require(record, "rejected"), "rejected")
    return pair_row(prompt, chosen, rejected, source, **_scores(record), meta=leftover_meta(record, used))


def parse_standard_implicit(record: Record, source: str) -> dict[str, Any]:
    """``{chosen, rejected}`` as two full HH transcripts: the prompt is their common beginning."""
    prompt, chosen, rejected = split_pair(text(record, "chosen"), text(record, "rejected"))
    return make_row(prompt, chosen, rejected, source=source, **_scores(record),
                    meta=leftover_meta(record, {"chosen", "rejected"} | _SCORES))


def parse_conversational_implicit(record: Record, source: str) -> dict[str, Any]:
    """``{chosen, rejected}`` as two full conversations that share everything up to their continuations.

    The prompt is the shared beginning cut back to its last user message; each side's continuation (the final
    assistant message, or tool calls, their results and the answer) is what follows it.
    """
    chosen = messages(require(record, "chosen"), "chosen")
    rejected = messages(require(record, "rejected"), "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    cut = 1 + max((i for i in range(shared) if chosen[i]["role"] == "user"), default=shared - 1)
    for field, conversation in (("chosen", chosen), ("rejected", rejected)):
        if len(conversation) == shared:
            raise RowError("identical_pair" if chosen == rejected else "missing_field",
                           "no final reply after the shared prompt", field)
        if conversation[-1]["role"] != "assistant" or any(m["role"] not in ("assistant", "tool")
                                                          for m in conversation[cut:]):
            raise RowError("diverges_before_assistant",
                           "the conversations differ before their final assistant message", field)
    return make_row(chosen[:cut], chosen[cut:], rejected[cut:], source=source, **_scores(record),
                    meta=leftover_meta(record, {"chosen", "rejected"} | _SCORES))


def parse_prompt_only(record: Record, source: str) -> dict[str, Any]:
    return make_row(_prompt(require(record, "prompt")), source=source, meta=leftover_meta(record, {"prompt"}))


def parse_prompt_completion(record: Record, source: str) -> dict[str, Any]:
    """``{prompt, completion}`` is a demonstration; with a ``label`` it is an unpaired (KTO) row."""
    return reply_row(_prompt(require(record, "prompt")), reply(require(record, "completion"), "completion"), record,
                     source, {"prompt", "completion"})


def parse_messages(record: Record, source: str) -> dict[str, Any]:
    """``{messages}``: ending with an assistant turn it is a demonstration (or, labelled, an unpaired row), else a
    prompt."""
    return conversation_row(messages(require(record, "messages"), "messages"), record, source, {"messages"})


def _standard_prompt(record: Record) -> bool:
    prompt = record.get("prompt")
    return isinstance(prompt, str) and not is_listy(prompt) and not looks_rendered(prompt)


FORMATS = [
    Format("trl-standard", "preference", frozenset({"prompt", "chosen", "rejected"}), parse_explicit,
           "TRL standard preference, explicit prompt: prompt, chosen, rejected strings", accepts=_standard_prompt, number_fields=_SCORES, schema="preference"),
    Format("trl-conversational", "preference", frozenset({"prompt", "chosen", "rejected"}), parse_explicit,
           "TRL conversational preference, explicit prompt: prompt, chosen, rejected as lists of messages",
           accepts=lambda r: is_listy(r.get("prompt")), number_fields=_SCORES, schema="preference_conversational"),
    Format("trl-implicit", "preference", frozenset({"chosen", "rejected"}), parse_standard_implicit,
           "TRL standard preference, implicit prompt: chosen, rejected full HH-RLHF transcripts",
           accepts=lambda r: not is_listy(r.get("chosen")), number_fields=_SCORES, schema="preference_implicit"),
    Format("trl-conversational-implicit", "preference", frozenset({"chosen", "rejected"}),
           parse_conversational_implicit,
           "TRL conversational preference, implicit prompt: chosen, rejected full conversations",
           accepts=lambda r: is_listy(r.get("chosen")), number_fields=_SCORES, schema="preference_implicit"),
    Format("trl-prompt-only", "preference", frozenset({"prompt"}), parse_prompt_only,
           "TRL prompt-only: prompt (string or messages), a prompt for PPO", schema="prompt_completion"),
    Format("trl-prompt-completion", "preference", frozenset({"prompt", "completion"}), parse_prompt_completion,
           "TRL prompt-completion: prompt, completion (a demonstration)", bool_fields=_LABELS,
           schema="prompt_completion"),
    Format("trl-unpaired", "preference", frozenset({"prompt", "completion", "label"}), parse_prompt_completion,
           "TRL unpaired preference (KTO), standard or conversational: prompt, completion, label (true: desirable)",
           bool_fields=_LABELS, schema="prompt_completion"),
    Format("trl-messages", "preference", frozenset({"messages"}), parse_messages,
           "OpenAI / TRL messages, tool calls included (a demonstration when it ends with an assistant turn; with "
           "LLaMA-Factory's label or kto_tag an unpaired KTO row)", bool_fields=_LABELS, schema="messages"),
]
