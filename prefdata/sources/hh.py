"""Anthropic HH-RLHF text: two full transcripts in, one canonical row out.

The prompt is the longest common prefix of chosen and rejected, cut back to its last ``\\n\\nAssistant:``; the replies
are what follows. Splitting each side on its own last marker would be wrong: some replies contain a fake
``Human:``/``Assistant:`` turn of their own.

`red-team-attempts` is another schema (``transcript``, ``rating``, …) with no pairs: `red_team_row` makes it unsup text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prefdata.errors import RowError
from prefdata.row import Message, make_row, make_unsup_row

REPO_ID = "Anthropic/hh-rlhf"
PAIR_SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
RED_TEAM = "red-team-attempts"
SUBSETS = (*PAIR_SUBSETS, RED_TEAM)
SPLITS = ("train", "test")

ASSISTANT_MARKER = "\n\nAssistant:"
HUMAN_MARKER = "\n\nHuman:"
_TURN_MARKER = re.compile(r"\n\n(Human|Assistant):")
# A role marker that is not preceded by a blank line: the "Assistant: Human: …" defect of the real data.
_LOOSE_MARKER = re.compile(r"(?<!\n\n)(?:^|(?<=\s))(?:Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def _strip_one_space(text: str) -> str:
    return text[1:] if text.startswith(" ") else text


def _has_loose_marker(text: str) -> bool:
    # Substring tests first: they run in C and rule out almost every message without the regex.
    if "Human:" not in text and "Assistant:" not in text:
        return False
    return _LOOSE_MARKER.search(text) is not None


def _marker_words(text: str, end: int) -> int:
    """How many ``Human:``/``Assistant:`` occur in ``text[:end]`` (C-speed counts; equal to the turns when clean)."""
    return text.count("Human:", 0, end) + text.count("Assistant:", 0, end)


def shared_cut(chosen: str, rejected: str) -> int:
    """Where the last ``\n\nAssistant:`` lying wholly inside the common prefix of both sides starts; -1 if none.

    Same answer as cutting ``os.path.commonprefix`` back to its last marker, but it only tests the markers from the
    end (usually the first one tested is it) with C-speed `startswith`, instead of comparing character by character.
    """
    end = len(chosen)
    while True:
        cut = chosen.rfind(ASSISTANT_MARKER, 0, end)
        if cut < 0 or rejected.startswith(chosen[: cut + len(ASSISTANT_MARKER)]):
            return cut
        end = cut + len(ASSISTANT_MARKER) - 1  # the next marker to test ends before this one does


def parse_turns(text: str) -> list[Message]:
    """Split ``"\\n\\nHuman: …\\n\\nAssistant: …"`` into messages; refuse text that does not start with a turn."""
    if not text.startswith(HUMAN_MARKER):
        lead = text.lstrip()
        if lead.startswith("Human:"):
            text = "\n\n" + lead  # tolerated: the marker without its leading blank line at the very start
        else:
            raise RowError("malformed_markers", "the conversation does not start with a Human: turn", "chosen")
    pieces = _TURN_MARKER.split(text)
    return [
        {"role": _ROLES[speaker], "content": content[1:] if content[:1] == " " else content}
        for speaker, content in zip(pieces[1::2], pieces[2::2])
    ]


def split_pair(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """Return ``(prompt, chosen_reply, rejected_reply)`` for one HH record; `RowError` for the known defects."""
    for field, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise RowError("schema_violation", f"is {type(value).__name__}, not a string", field)
    cut = shared_cut(chosen, rejected)
    if cut < 0:
        raise RowError(
            "diverges_before_assistant", "chosen and rejected differ before the first Assistant: turn", "rejected"
        )
    prompt = parse_turns(chosen[:cut])
    start = cut + len(ASSISTANT_MARKER)
    chosen_reply = _strip_one_space(chosen[start:])
    rejected_reply = _strip_one_space(rejected[start:])
    if _marker_words(chosen, cut) > len(prompt):  # some marker word is not a turn: find the message it is in
        for i, message in enumerate(prompt):
            if _has_loose_marker(message["content"]):
                raise RowError("malformed_markers", "a role marker without the blank line before it", f"prompt[{i}]")
    for field, reply in (("chosen", chosen_reply), ("rejected", rejected_reply)):
        end = reply.find(HUMAN_MARKER)  # a fake turn of the reply's own is kept as text; check only before it
        if _has_loose_marker(reply if end < 0 else reply[:end]):
            raise RowError("malformed_markers", "a role marker without the blank line before it", field)
    return prompt, chosen_reply, rejected_reply


def _require_text(record: Mapping[str, Any], field: str) -> str:
    if field not in record:
        raise RowError("missing_field", f"no {field!r} field", field)
    return record[field]


def hh_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One ``{"chosen", "rejected"}`` record as a canonical pair row; `RowError` with a reason code otherwise."""
    if "transcript" in record and "chosen" not in record:
        raise RowError("wrong_schema", "a red-team-attempts record (transcript), not a chosen/rejected pair", "chosen")
    prompt, chosen, rejected = split_pair(_require_text(record, "chosen"), _require_text(record, "rejected"))
    return make_row(prompt, chosen, rejected, source=source)


def red_team_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One red-team attempt as unsup text: the transcript as it is; rating, harmlessness scores etc. go to ``meta``."""
    if "chosen" in record and "transcript" not in record:
        raise RowError("wrong_schema", "a chosen/rejected pair, not a red-team-attempts record", "transcript")
    meta = {key: value for key, value in record.items() if key != "transcript"}
    return make_unsup_row(_require_text(record, "transcript"), source=source, meta=meta)
