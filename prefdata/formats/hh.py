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

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, check_turns_pair, make_row_from_turns, make_unsup_row
from prefdata.formats import common

REPO_ID = "Anthropic/hh-rlhf"
PAIR_SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
RED_TEAM = "red-team-attempts"
SUBSETS = (*PAIR_SUBSETS, RED_TEAM)
SPLITS = ("train", "test")

ASSISTANT_MARKER = "\n\nAssistant:"
HUMAN_MARKER = "\n\nHuman:"
# A turn marker and the single space after it: splitting on it strips that space from each message in the same pass.
_TURN_MARKER = re.compile(r"\n\n(Human|Assistant): ?")
# A role marker that is not preceded by a blank line: the "Assistant: Human: …" defect of the real data.
_LOOSE_MARKER = re.compile(r"(?<!\n\n)(?:^|(?<=\s))(?:Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def _has_loose_marker(text: str) -> bool:
    # Substring tests first: they run in C and rule out almost every message without the regex.
    if "Human:" not in text and "Assistant:" not in text:
        return False
    return _LOOSE_MARKER.search(text) is not None


def _reply_has_loose_marker(reply: str) -> bool:
    """A loose marker before the reply's own first ``\\n\\nHuman:`` (a fake turn of the reply's own is kept as text)."""
    if "Human:" not in reply and "Assistant:" not in reply:
        return False
    end = reply.find(HUMAN_MARKER)
    return _has_loose_marker(reply if end < 0 else reply[:end])


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


def _turns(text: str) -> tuple[list[str], list[str]]:
    """Roles (``user``/``assistant``) and contents of ``"\\n\\nHuman: …\\n\\nAssistant: …"``: one regex pass."""
    if not text.startswith(HUMAN_MARKER):
        lead = text.lstrip()
        if lead.startswith("Human:"):
            text = "\n\n" + lead  # tolerated: the marker without its leading blank line at the very start
        else:
            raise RowError("malformed_markers", "the conversation does not start with a Human: turn", "chosen")
    pieces = _TURN_MARKER.split(text)
    return list(map(_ROLES.__getitem__, pieces[1::2])), pieces[2::2]


def parse_turns(text: str) -> list[Message]:
    """Split ``"\\n\\nHuman: …\\n\\nAssistant: …"`` into messages; refuse text that does not start with a turn."""
    roles, contents = _turns(text)
    return [{"role": role, "content": content} for role, content in zip(roles, contents)]


def _split(chosen: str, rejected: str) -> tuple[list[str], list[str], str, str]:
    """`split_pair` as parallel role and content lists: what `make_row_from_turns` takes, without message dicts."""
    if type(chosen) is not str or type(rejected) is not str:  # noqa: E721 - exact types are the fast test
        for field, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, str):
                raise RowError("schema_violation", f"is {type(value).__name__}, not a string", field)
    cut = shared_cut(chosen, rejected)
    if cut < 0:
        raise RowError(
            "diverges_before_assistant", "chosen and rejected differ before the first Assistant: turn", "rejected"
        )
    roles, contents = _turns(chosen[:cut])
    start = cut + len(ASSISTANT_MARKER)  # replies lose the single space after the marker, as prompt turns do
    chosen_reply = chosen[start + 1 :] if chosen.startswith(" ", start) else chosen[start:]
    rejected_reply = rejected[start + 1 :] if rejected.startswith(" ", start) else rejected[start:]
    # More "Human:"/"Assistant:" words than turns: some marker word is not a turn; find the message it is in.
    if chosen.count("Human:", 0, cut) + chosen.count("Assistant:", 0, cut) > len(roles):
        for i, content in enumerate(contents):
            if _has_loose_marker(content):
                raise RowError("malformed_markers", "a role marker without the blank line before it", f"prompt[{i}]")
    if _reply_has_loose_marker(chosen_reply):
        raise RowError("malformed_markers", "a role marker without the blank line before it", "chosen")
    if _reply_has_loose_marker(rejected_reply):
        raise RowError("malformed_markers", "a role marker without the blank line before it", "rejected")
    return roles, contents, chosen_reply, rejected_reply


def split_pair(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """Return ``(prompt, chosen_reply, rejected_reply)`` for one HH record; `RowError` for the known defects."""
    roles, contents, chosen_reply, rejected_reply = _split(chosen, rejected)
    prompt = [{"role": role, "content": content} for role, content in zip(roles, contents)]
    return prompt, chosen_reply, rejected_reply


def _check_pair_record(record: Mapping[str, Any]) -> tuple[str, str]:
    """Both sides, checked as `prefdata import` checks them (`common.text`): the same defect, the same message."""
    if "transcript" in record and "chosen" not in record:
        raise RowError("wrong_schema", "a red-team-attempts record (transcript), not a chosen/rejected pair", "chosen")
    return common.text(record, "chosen"), common.text(record, "rejected")


def hh_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One ``{"chosen", "rejected"}`` record as a canonical pair row; `RowError` with a reason code otherwise."""
    roles, contents, chosen, rejected = _split(*_check_pair_record(record))
    return make_row_from_turns(roles, contents, chosen, rejected, source=source)


def hh_pair_parts(record: Mapping[str, Any]) -> tuple[list[str], list[str], str, str, str, str]:
    """`hh_row` as ``(roles, contents, chosen, rejected, id, group)``: the row's columns without a dict per message.

    Bulk conversion (`prefdata.pipeline.parallel`) builds Arrow columns from these directly: same checks, same errors.
    """
    roles, contents, chosen, rejected = _split(*_check_pair_record(record))
    return (roles, contents, chosen, rejected, *check_turns_pair(roles, contents, chosen, rejected))


def red_team_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One red-team attempt as unsup text: the transcript as it is; rating, harmlessness scores etc. go to ``meta``."""
    if "chosen" in record and "transcript" not in record:
        raise RowError("wrong_schema", "a chosen/rejected pair, not a red-team-attempts record", "transcript")
    meta = {key: value for key, value in record.items() if key != "transcript"}
    return make_unsup_row(common.text(record, "transcript"), source=source, meta=meta)


class PairParser:
    """The HH pair parser handed to `prefdata.pipeline.parallel`: ``row`` per record, and ``pair_parts``, its
    columnar twin, which the bulk path uses to build Arrow columns without a dict per row."""

    row = staticmethod(hh_row)
    pair_parts = staticmethod(hh_pair_parts)


class RedTeamParser:
    """red-team-attempts transcripts as unsup text rows (no columnar twin: not pairs)."""

    row = staticmethod(red_team_row)


PAIRS = PairParser()
RED_TEAM_TEXT = RedTeamParser()
