"""What every format module shares: the `Format` record and small pure helpers that read one field of a record.

The helpers raise `RowError` with the field's name, so a bad record is quarantined (or stops the run) with a message
that says which field is wrong and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.nesting import MAX_DEPTH, TOO_DEEP, too_deep
from prefdata.contract.rules import Message, check_score, number_from_text, type_name

Record = Mapping[str, Any]
ParseFn = Callable[[Record, str], dict[str, Any]]

USER_ROLES = frozenset({"user", "human"})
ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "chatgpt", "bot"})
SYSTEM_ROLES = frozenset({"system"})


@dataclass(frozen=True)
class Format:
    """One input format: the keys that identify it, a value check to tell apart formats with the same keys, a parser.

    ``signature`` is what auto-detection looks for; when several formats match a record, one whose signature is a
    strict superset of another's wins (``user_input, completion, score`` is ChatLLaMA reward, not actor data).
    """

    name: str
    row_schema: str  # the rows it makes: "preference" (prefdata.preference/1) or "unsup" (prefdata.unsup/1)
    signature: frozenset[str]
    parse: ParseFn
    description: str
    accepts: Callable[[Record], bool] = field(default=lambda record: True)
    number_fields: frozenset[str] = frozenset()  # record keys holding numbers, read from text in CSV

    def for_container(self, container: str) -> Format:
        """This format for records read from ``container``: in CSV, number fields spelled as text are numbers."""
        if container != "csv" or not self.number_fields:
            return self
        return replace(self, parse=partial(numbers_from_text, self.parse, self.number_fields))


def maybe_json(value: Any, field_name: str | None = None) -> Any:
    """A list or object stored as JSON text (a CSV cell) is decoded; anything else is returned unchanged.

    JSON text nested too deep for the decoder is a `RowError` (``too_deep``), never a RecursionError."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        if too_deep(value):
            raise RowError(TOO_DEEP, f"JSON text nested deeper than {MAX_DEPTH} levels", field_name)
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, dict) or (isinstance(decoded, list) and all(isinstance(v, dict) for v in decoded)):
            return decoded
    return value


def is_listy(value: Any) -> bool:
    try:
        return isinstance(maybe_json(value), list)
    except RowError:  # too deep to decode, but it opens a list: the parser that decodes it quarantines it
        return value.lstrip().startswith("[")


def require(record: Record, key: str) -> Any:
    if key not in record:
        raise RowError("missing_field", "required key is missing", key)
    value = record[key]
    if value is None:
        raise RowError("missing_field", "required value is empty (null)", key)
    return value


def text(record: Record, key: str) -> str:
    """A required string field."""
    return as_text(require(record, key), key)


def optional_text(record: Record, key: str) -> str | None:
    value = record.get(key)
    return None if value is None else as_text(value, key)


def as_text(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a string", field_name)
    return value


def score(record: Record, key: str, *, required: bool = False) -> float | None:
    """A score: a finite JSON number (`prefdata.contract.rules.check_score`; CSV text is converted before parsing)."""
    return check_score(require(record, key) if required else record.get(key), key)


def numbers_from_text(parse: ParseFn, keys: frozenset[str], record: Record, source: str) -> dict[str, Any]:
    """``parse`` of a CSV record whose number cells (``keys``) spelled as text are numbers first: CSV has only text."""
    converted = {key: number_from_text(record[key]) for key in keys & record.keys()}
    return parse({**record, **converted} if converted else record, source)


def role_of(name: Any, field_name: str) -> str:
    lowered = name.lower() if isinstance(name, str) else name
    if lowered in USER_ROLES:
        return "user"
    if lowered in ASSISTANT_ROLES:
        return "assistant"
    if lowered in SYSTEM_ROLES:
        return "system"
    raise RowError("bad_role", f"role {name!r} is not user/human, assistant/gpt or system", field_name)


def message(value: Any, field_name: str) -> Message:
    """One chat message, OpenAI style (``role``/``content``) or ShareGPT style (``from``/``value``)."""
    if not isinstance(value, Mapping):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a message object", field_name)
    if "role" in value or "content" in value:
        role_key, content_key = "role", "content"
    elif "from" in value or "value" in value:
        role_key, content_key = "from", "value"
    else:
        raise RowError("schema_violation", "a message needs role/content or from/value", field_name)
    if role_key not in value:
        raise RowError("missing_field", "required key is missing", f"{field_name}.{role_key}")
    content = value.get(content_key)
    if content is None:
        raise RowError("missing_field", "required key is missing", f"{field_name}.{content_key}")
    return {"role": role_of(value[role_key], f"{field_name}.{role_key}"),
            "content": as_text(content, f"{field_name}.{content_key}")}


def messages(value: Any, field_name: str) -> list[Message]:
    """A list of chat messages (JSON text in a CSV cell is decoded first)."""
    value = maybe_json(value, field_name)
    if not isinstance(value, list):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a list of messages", field_name)
    return [message(item, f"{field_name}[{i}]") for i, item in enumerate(value)]


def reply(value: Any, field_name: str) -> str:
    """A final reply: a string, one assistant message, or a list holding exactly one assistant message."""
    value = maybe_json(value, field_name)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = [message(value, field_name)]
    elif isinstance(value, list):
        found = messages(value, field_name)
    else:
        raise RowError("schema_violation", f"is a {type_name(value)}, not a string or message", field_name)
    if len(found) != 1 or found[0]["role"] != "assistant":
        raise RowError("schema_violation", "must be exactly one assistant message", field_name)
    return found[0]["content"]


def user_prompt(text_value: str, system: str | None = None) -> list[Message]:
    prompt: list[Message] = [{"role": "system", "content": system}] if system else []
    return prompt + [{"role": "user", "content": text_value}]


def leftover_meta(record: Record, used: frozenset[str] | set[str]) -> dict[str, Any]:
    """Keys the format does not read are kept in `meta`, so nothing in the input is dropped silently."""
    return {key: value for key, value in record.items() if key not in used}
