"""The row rules of the data contract (design §1): each rule once, with its reason code.

`make_row` and the HH fast path (`check_turns_pair`) raise the first broken rule as a `RowError`; `prefdata validate`
reports every broken rule of a stored row (`stored_row_errors`) and, for data files, the error the format's parser
raises through `make_row`. Because all of them call these functions, import and validate cannot disagree about a row.

Reason codes (stable; they name quarantine lines and validation messages):

- ``schema_violation``: a value of the wrong type, or a score that is not a finite number.
- ``missing_field``: a required value is null, or a ``rejected`` reply without a ``chosen`` one.
- ``bad_role``: a message role other than ``system``, ``user``, ``assistant``, ``tool``.
- ``empty_prompt``: no messages, or only empty user messages.
- ``prompt_not_ending_with_user``: the last prompt message is not the user's.
- ``empty_reply``: a reply that is empty or only white space.
- ``identical_pair``: ``chosen`` and ``rejected`` are the same text (or the same continuation).
- ``bad_continuation``: a continuation (a reply given as messages) with a role other than ``assistant``/``tool``, or
  not ending with an assistant message that has text; for stored rows also a reply set both as text and as turns, or
  one plain assistant message stored as turns (`make_row` stores that as text).
- ``bad_label``: ``label`` is not a boolean, or the reply it labels is missing, or both replies are set.
- ``bad_tool_call``: ``tool_calls`` that is not a JSON list of objects, or tool fields on the wrong role
  (``tool_calls`` on assistant messages only, ``tool_call_id``/``name`` on tool messages only).
- ``empty_text``: an unsupervised row without text.
- ``bad_unicode``: text with an unpaired surrogate, which has no UTF-8 (raised where ids are hashed).
- ``bad_meta``: ``meta`` is not a JSON object (stored rows only).
- ``id_mismatch``: the stored ``id`` is not the hash of the row's content: it was edited after it was written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefdata.contract import nesting
from prefdata.contract.errors import RowError

ROLES = ("system", "user", "assistant", "tool")
REPLY_ROLES = ("assistant", "tool")  # the roles of a continuation
TOOL_FIELDS = ("tool_calls", "tool_call_id", "name")  # optional message fields, each kept only when set
_TOOL_FIELD_ROLE = {"tool_calls": "assistant", "tool_call_id": "tool", "name": "tool"}
REASONS = ("schema_violation", "missing_field", "bad_role", "empty_prompt", "prompt_not_ending_with_user",
           "empty_reply", "identical_pair", "bad_continuation", "bad_label", "bad_tool_call", "empty_text",
           "bad_unicode", "bad_meta", "id_mismatch")
Message = dict[str, str]
Reply = str | list[Message] | None  # a reply as ids and comparisons see it: text, a continuation, or none
# A score written as text (CSV cells are all text): a plain decimal number, as the JSON Schema `number` reads it.
NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages about input that came from JSON or CSV."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_json(value: Any) -> str:
    """The one JSON spelling used for hashing, `meta` and `tool_calls`: sorted keys, no spaces, UTF-8 kept as is."""
    return _CANONICAL.encode(value)  # what json.dumps does with these options, without building an encoder per call


def check_message(message: Any, index: int, where: str = "prompt") -> Message:
    """One message: an object with a known role and string content, plus the tool fields that are set (a null or
    absent one is left out, so a message read back from a shard is the dict that was written)."""
    if type(message) is not dict and not isinstance(message, Mapping):
        raise RowError("schema_violation", f"message {index} is a {type_name(message)}, not an object",
                       f"{where}[{index}]")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise RowError("bad_role", f"role {role!r} is not one of {', '.join(ROLES)}", f"{where}[{index}].role")
    if not isinstance(content, str):
        raise RowError("schema_violation", f"content is a {type_name(content)}, not a string",
                       f"{where}[{index}].content")
    checked = {"role": role, "content": content}
    for key in TOOL_FIELDS:
        value = message.get(key)
        if value is not None:
            value = _check_tool_field(key, value, role, f"{where}[{index}].{key}")
            if value is not None:
                checked[key] = value
    return checked


def _check_tool_field(key: str, value: Any, role: str, field: str) -> str | None:
    """A set tool field on a message of ``role``; ``tool_calls`` comes back as canonical JSON (None for no calls)."""
    if role != _TOOL_FIELD_ROLE[key]:
        raise RowError("bad_tool_call", f"{key} belongs on {_TOOL_FIELD_ROLE[key]} messages, not on {role} ones",
                       field)
    if key != "tool_calls":
        if not isinstance(value, str):
            raise RowError("schema_violation", f"is a {type_name(value)}, not a string", field)
        return value
    if isinstance(value, str):
        try:
            value = nesting.loads(value, nesting.DOCUMENT_DEPTH)
        except ValueError:  # TooDeepError included
            raise RowError("bad_tool_call", "is not JSON", field) from None
    if not isinstance(value, list) or not all(isinstance(call, dict) for call in value):
        raise RowError("bad_tool_call", f"is a {type_name(value)}, not a list of call objects", field)
    return canonical_json(value) if value else None


def is_plain(message: Mapping[str, Any]) -> bool:
    """A checked message with no tool field: the /1 shape (`check_message` drops fields that are not set)."""
    return len(message) == 2


def check_turns(roles: Sequence[str], contents: Sequence[str]) -> None:
    """The prompt as a whole: it has messages, ends with the user's, and some user message has text."""
    if not roles:
        raise RowError("empty_prompt", "the prompt has no messages", "prompt")
    if roles[-1] != "user":
        raise RowError("prompt_not_ending_with_user", "the prompt must end with a user message", "prompt")
    for role, content in zip(roles, contents):
        if role == "user" and content and not content.isspace():  # no strip() copies
            return
    raise RowError("empty_prompt", "every user message in the prompt is empty", "prompt")


def check_prompt(prompt: Any) -> list[Message]:
    """A prompt given as a list of message objects: each message, then the whole."""
    if not isinstance(prompt, list) or not prompt:
        raise RowError("empty_prompt", "the prompt has no messages", "prompt")
    messages = [check_message(message, i) for i, message in enumerate(prompt)]
    check_turns([m["role"] for m in messages], [m["content"] for m in messages])
    return messages


def check_text_reply(value: str, field: str) -> str:
    """A reply known to be a string must have text."""
    if not value or value.isspace():  # the same test as `not value.strip()`, without copying the text
        raise RowError("empty_reply", "the reply is empty", field)
    return value


def check_reply(value: Any, field: str) -> str | None:
    """An optional reply: None, or a string with text."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a string", field)
    return check_text_reply(value, field)


def is_one_plain_answer(turns: Sequence[Message]) -> bool:
    """Checked messages that are exactly one assistant message without tool fields: a reply stored as text."""
    return len(turns) == 1 and turns[0]["role"] == "assistant" and is_plain(turns[0])


def check_continuation(value: Any, field: str) -> tuple[str | None, list[Message] | None]:
    """A reply given as text or as a list of messages: ``(text, None)``, ``(None, turns)`` or ``(None, None)``.

    One plain assistant message is the text form (the same content makes the same row whatever shape the input had);
    anything else is kept as turns: assistant/tool messages ending with an assistant message that has text."""
    if value is None or isinstance(value, str):
        return check_reply(value, field), None
    if not isinstance(value, list):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a string or a list of messages", field)
    turns = [check_message(message, i, field) for i, message in enumerate(value)]
    if is_one_plain_answer(turns):
        return check_text_reply(turns[0]["content"], field), None
    check_turns_reply(turns, field)
    return None, turns


def check_turns_reply(turns: Sequence[Message], field: str) -> None:
    """The shape of a continuation of checked messages (`check_continuation`)."""
    for i, message in enumerate(turns):
        if message["role"] not in REPLY_ROLES:
            raise RowError("bad_continuation", f"role {message['role']!r} cannot continue a prompt (only "
                                               f"{' and '.join(REPLY_ROLES)})", f"{field}[{i}].role")
    if not turns or turns[-1]["role"] != "assistant" or not turns[-1]["content"] or turns[-1]["content"].isspace():
        raise RowError("bad_continuation", "a continuation must end with an assistant message that has text", field)


def check_sides(chosen: Reply, rejected: Reply, label: Any) -> None:
    """The two replies together: a pair (`check_pair`), or with a ``label`` an unpaired row whose one reply sits on
    the side the label names (True: chosen, False: rejected)."""
    if label is None:
        check_pair(chosen, rejected)
        return
    if type(label) is not bool:
        raise RowError("bad_label", f"is a {type_name(label)}, not a boolean", "label")
    if chosen is not None and rejected is not None:
        raise RowError("bad_label", "a labelled (unpaired) row has one reply, but both are set", "label")
    if (chosen if label else rejected) is None:
        side = "chosen" if label else "rejected"
        raise RowError("bad_label", f"label {str(label).lower()} needs the reply in {side}", side)


def check_pair(chosen: Reply, rejected: Reply) -> None:
    """A rejected reply needs a chosen one, and a different one."""
    if rejected is not None and chosen is None:
        raise RowError("missing_field", "a rejected reply needs a chosen reply", "chosen")
    if rejected is not None and chosen == rejected:
        raise RowError("identical_pair", "chosen and rejected are identical", "rejected")


def check_score(value: Any, field: str) -> float | None:
    """An optional score: a finite number (a boolean is not one, nor is text; see `number_from_text`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a number", field)
    score = float(value)
    if not math.isfinite(score):
        raise RowError("schema_violation", "is not a finite number", field)
    return score


def number_from_text(value: Any) -> Any:
    """A CSV cell that spells a number is that number; anything else is returned as it is (the rules judge it)."""
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def check_unsup_text(text: Any) -> str:
    """An unsupervised row's text: a string with text."""
    if not isinstance(text, str):
        raise RowError("schema_violation", f"is a {type_name(text)}, not a string", "text")
    if not text.strip():
        raise RowError("empty_text", "the text is empty", "text")
    return text


def field_pointer(field: str | None) -> str | None:
    """A `RowError` field (``prompt[0].role``) as a JSON pointer (``/prompt/0/role``); None stays None."""
    if not field:
        return None
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1")
                          for part in re.split(r"\.|\[|\]\.?", field.rstrip("]")) if part)


def _collect(errors: list[RowError], check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except RowError as e:
        errors.append(e)
        return None


def stored_row_errors(row: Mapping[str, Any], *, unsup: bool = False,
                      content_id: Callable[[Mapping[str, Any]], str] | None = None) -> list[RowError]:
    """Every rule a stored row (``unsup``: a `prefdata.unsup/1` row) breaks: a stored row is not stopped at its first
    defect, so all are reported. ``content_id`` is the id the row's content hashes to: once the row breaks no other
    rule, another stored id is ``id_mismatch`` (the row was edited after it was written).
    """
    errors = [RowError("missing_field", "is null or empty", key) for key in ("id", "source") if not row.get(key)]
    if unsup:
        _collect(errors, check_unsup_text, row.get("text"))
    else:
        _preference_row_errors(row, errors)
    if content_id is not None and not errors:
        expected = content_id(row)
        if row["id"] != expected:
            errors.append(RowError("id_mismatch", f"{row['id']} is not the hash of the row's content ({expected}): "
                                                  "the row was edited after it was written", "id"))
    return errors


def _stored_reply(row: Mapping[str, Any], side: str, errors: list[RowError]) -> Reply:
    """One side of a stored row as `check_sides` compares it: its text or its turns, each checked."""
    text = row.get(side)
    _collect(errors, check_reply, text, side)
    turns_field = f"{side}_turns"
    stored = row.get(turns_field)
    if stored is None:
        return text
    if not isinstance(stored, list):
        errors.append(RowError("schema_violation", f"is a {type_name(stored)}, not a list of messages", turns_field))
        return stored
    turns = [_collect(errors, check_message, message, i, turns_field) for i, message in enumerate(stored)]
    if any(message is None for message in turns):
        return stored  # a reply all the same: its broken message is reported, not a missing reply
    if row.get(side) is not None:
        errors.append(RowError("bad_continuation", f"{side} is set both as text and as turns", turns_field))
    elif is_one_plain_answer(turns):
        errors.append(RowError("bad_continuation", f"one plain assistant message is stored as text, in {side}",
                               turns_field))
    else:
        _collect(errors, check_turns_reply, turns, turns_field)
    return turns


def _preference_row_errors(row: Mapping[str, Any], errors: list[RowError]) -> None:
    """`make_row`'s rules, each applied on its own so that one broken rule does not hide the next."""
    if not row.get("group"):
        errors.append(RowError("missing_field", "is null or empty", "group"))
    messages = [_collect(errors, check_message, message, i) for i, message in enumerate(row.get("prompt") or [])]
    if all(m is not None for m in messages):
        _collect(errors, check_turns, [m["role"] for m in messages], [m["content"] for m in messages])
    replies = [_stored_reply(row, side, errors) for side in ("chosen", "rejected")]
    _collect(errors, check_sides, *replies, row.get("label"))
    for key in ("chosen_score", "rejected_score"):
        _collect(errors, check_score, row.get(key), key)
    try:
        if not isinstance(nesting.loads(row.get("meta") or "", nesting.DOCUMENT_DEPTH), dict):
            errors.append(RowError("bad_meta", "is not a JSON object", "meta"))
    except nesting.TooDeepError as e:
        errors.append(RowError("bad_meta", str(e), "meta"))
    except ValueError:
        errors.append(RowError("bad_meta", "is not valid JSON", "meta"))
