"""Anthropic HH-RLHF text: two full transcripts in, one canonical row out.

The prompt is the longest common prefix of chosen and rejected, cut back to its last ``\\n\\nAssistant:``; the replies
are what follows. Splitting each side on its own last marker would be wrong: some replies contain a fake
``Human:``/``Assistant:`` turn of their own.
"""

from __future__ import annotations

import os
import re

from prefdata.errors import RowError
from prefdata.row import Message

ASSISTANT_MARKER = "\n\nAssistant:"
_TURN_MARKER = re.compile(r"\n\n(Human|Assistant):")
# A role marker that is not preceded by a blank line: the "Assistant: Human: …" defect of the real data.
_LOOSE_MARKER = re.compile(r"(?:^|\s)(?:Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def _strip_one_space(text: str) -> str:
    return text[1:] if text.startswith(" ") else text


def parse_turns(text: str) -> list[Message]:
    """Split ``"\\n\\nHuman: …\\n\\nAssistant: …"`` into messages; refuse text that does not start with a turn."""
    if not text.startswith("\n\nHuman:"):
        lead = text.lstrip()
        if lead.startswith("Human:"):
            text = "\n\n" + lead  # tolerated: the marker without its leading blank line at the very start
        else:
            raise RowError("malformed_markers", "the conversation does not start with a Human: turn", "chosen")
    pieces = _TURN_MARKER.split(text)
    messages = []
    for speaker, content in zip(pieces[1::2], pieces[2::2]):
        messages.append({"role": _ROLES[speaker], "content": _strip_one_space(content)})
    return messages


def split_pair(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """Return ``(prompt, chosen_reply, rejected_reply)`` for one HH record; `RowError` for the known defects."""
    for field, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise RowError("schema_violation", f"is {type(value).__name__}, not a string", field)
    prefix = os.path.commonprefix([chosen, rejected])
    cut = prefix.rfind(ASSISTANT_MARKER)
    if cut < 0:
        raise RowError(
            "diverges_before_assistant", "chosen and rejected differ before the first Assistant: turn", "rejected"
        )
    prompt = parse_turns(chosen[:cut])
    chosen_reply = _strip_one_space(chosen[cut + len(ASSISTANT_MARKER) :])
    rejected_reply = _strip_one_space(rejected[cut + len(ASSISTANT_MARKER) :])
    for i, message in enumerate(prompt):
        if _LOOSE_MARKER.search(message["content"]):
            raise RowError("malformed_markers", "a role marker without the blank line before it", f"prompt[{i}]")
    for field, reply in (("chosen", chosen_reply), ("rejected", rejected_reply)):
        if _LOOSE_MARKER.search(reply.split("\n\nHuman:")[0]):
            raise RowError("malformed_markers", "a role marker without the blank line before it", field)
    return prompt, chosen_reply, rejected_reply
