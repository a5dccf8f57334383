"""The row rules of the data contract (design §1): each rule once, with its reason code.

`make_row` and the HH fast path (`check_turns_pair`) raise the first broken rule as a `RowError`; `prefdata validate`
reports every broken rule of a stored row (`stored_row_errors`) and, for data files, the error the format's parser
raises through `make_row`. Because all of them call these functions, import and validate cannot disagree about a row.

Reason codes (stable; they name quarantine lines and validation messages):

- ``schema_violation``: a value of the wrong type, or a score that is not a finite number.
- ``missing_field``: a required value is null, or a ``rejected`` reply without a ``chosen`` one.
- ``bad_role``: a message role other than ``system``, ``user``, ``assistant``.
- ``empty_prompt``: no messages, or only empty user messages.
- ``prompt_not_ending_with_user``: the last prompt message is not the user's.
- ``empty_reply``: a reply that is empty or only white space.
- ``identical_pair``: ``chosen`` and ``rejected`` are the same text.
- ``empty_text``: an unsupervised row without text.
- ``bad_unicode``: text with an unpaired surrogate, which has no UTF-8 (raised where ids are hashed).
- ``bad_meta``: ``meta`` is not a JSON object (stored rows only).
- ``id_mismatch``: the stored ``id`` is not the hash of the row's content: it was edited after it was written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefdata.contract import nesting
from prefdata.contract.errors import RowError

ROLES = ("system", "user", "assistant")
REASONS = ("schema_violation", "missing_field", "bad_role", "empty_prompt", "prompt_not_ending_with_user",
           "empty_reply", "identical_pair", "empty_text", "bad_unicode", "bad_meta", "id_mismatch")
Message = dict[str, str]
# A score written as text (CSV cells are all text): a plain decimal number, as the JSON Schema `number` reads it.
NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages about input that came from JSON or CSV."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_message(message: Any, index: int) -> Message:
    """One prompt message: an object with a known role and string content."""
    if type(message) is not dict and not isinstance(message, Mapping):
        raise RowError("schema_violation", f"message {index} is a {type_name(message)}, not an object",
                       f"prompt[{index}]")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise RowError("bad_role", f"role {role!r} is not one of {', '.join(ROLES)}", f"prompt[{index}].role")
    if not isinstance(content, str):
        raise RowError("schema_violation", f"content is a {type_name(content)}, not a string",
                       f"prompt[{index}].content")
    return {"role": role, "content": content}


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


def check_pair(chosen: str | None, rejected: str | None) -> None:
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


def _preference_row_errors(row: Mapping[str, Any], errors: list[RowError]) -> None:
    """`make_row`'s rules, each applied on its own so that one broken rule does not hide the next."""
    if not row.get("group"):
        errors.append(RowError("missing_field", "is null or empty", "group"))
    messages = [_collect(errors, check_message, message, i) for i, message in enumerate(row.get("prompt") or [])]
    if all(m is not None for m in messages):
        _collect(errors, check_turns, [m["role"] for m in messages], [m["content"] for m in messages])
    for key in ("chosen", "rejected"):
        _collect(errors, check_reply, row.get(key), key)
    _collect(errors, check_pair, row.get("chosen"), row.get("rejected"))
    for key in ("chosen_score", "rejected_score"):
        _collect(errors, check_score, row.get(key), key)
    try:
        if not isinstance(nesting.loads(row.get("meta") or "", nesting.DOCUMENT_DEPTH), dict):
            errors.append(RowError("bad_meta", "is not a JSON object", "meta"))
    except nesting.TooDeepError as e:
        errors.append(RowError("bad_meta", str(e), "meta"))
    except ValueError:
        errors.append(RowError("bad_meta", "is not valid JSON", "meta"))
