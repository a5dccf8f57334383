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
from prefdata.contract.row import canonical_json, make_row
from prefdata.contract.rules import Message, check_score, number_from_text, type_name

Record = Mapping[str, Any]
ParseFn = Callable[[Record, str], dict[str, Any]]

USER_ROLES = frozenset({"user", "human"})
ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "chatgpt", "bot"})
SYSTEM_ROLES = frozenset({"system"})
# A tool's result: OpenAI's ``tool`` (and its older ``function``), LLaMA-Factory ShareGPT's ``observation``.
TOOL_ROLES = frozenset({"tool", "function", "observation"})
# LLaMA-Factory ShareGPT's assistant turn that only calls a tool: its value is the call as JSON text.
CALL_ROLES = frozenset({"function_call"})
# The key of an unpaired (KTO) row's verdict on its reply: TRL and LLaMA-Factory's demo use ``label``, LLaMA-Factory's
# dataset_info default is ``kto_tag``.
LABEL_KEYS = ("label", "kto_tag")


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
    bool_fields: frozenset[str] = frozenset()  # record keys holding true/false, read from text in CSV
    schema: str | None = None  # the JSON Schema in `schemas/` that describes its records (`prefdata validate`)

    def cells_from_text(self, record: Record) -> Record:
        """``record`` as read from CSV, where every cell is text: number and true/false cells become values."""
        converted = {key: number_from_text(record[key]) for key in self.number_fields & record.keys()}
        converted.update((key, bool_from_text(record[key])) for key in self.bool_fields & record.keys())
        return {**record, **converted} if converted else record

    def for_container(self, container: str) -> Format:
        """This format for records read from ``container``: in CSV, number and boolean cells spelled as text are
        values."""
        if container != "csv" or not (self.number_fields or self.bool_fields):
            return self
        return replace(self, parse=partial(_parse_cells_from_text, self))


def _parse_cells_from_text(fmt: Format, record: Record, source: str) -> dict[str, Any]:
    return fmt.parse(fmt.cells_from_text(record), source)


def bool_from_text(value: Any) -> Any:
    """``true``/``false`` (any case) as a CSV cell spells a boolean; anything else is returned unchanged."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


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


def role_of(name: Any, field_name: str) -> str:
    lowered = name.lower() if isinstance(name, str) else name
    if lowered in USER_ROLES:
        return "user"
    if lowered in ASSISTANT_ROLES:
        return "assistant"
    if lowered in SYSTEM_ROLES:
        return "system"
    if lowered in TOOL_ROLES:
        return "tool"
    raise RowError("bad_role", f"role {name!r} is not user/human, assistant/gpt, system, tool/observation or "
                               "function_call", field_name)


def tool_calls(value: Any, field_name: str) -> str | None:
    """OpenAI's ``tool_calls`` (a list of call objects, or that list as JSON text) as the row keeps it: canonical
    JSON text, every call as given; an empty list is no call."""
    value = maybe_json(value, field_name)
    if not (isinstance(value, list) and all(isinstance(call, Mapping) for call in value)):
        raise RowError("bad_tool_call", f"is a {type_name(value)}, not a list of tool call objects", field_name)
    return canonical_json(value) if value else None


def function_calls(value: Any, field_name: str) -> str:
    """LLaMA-Factory's ``function_call`` value (``{"name", "arguments"}`` as JSON text, or a list of them) and OpenAI's
    legacy ``function_call`` object, as OpenAI ``tool_calls``: ``[{"type": "function", "function": call}]``."""
    decoded = maybe_json(value, field_name)
    calls = [decoded] if isinstance(decoded, Mapping) else decoded
    if not (isinstance(calls, list) and calls and all(isinstance(c, Mapping) and "name" in c for c in calls)):
        raise RowError("bad_tool_call", "is not a function call {name, arguments} (or a list of them) as JSON",
                       field_name)
    return canonical_json([{"type": "function", "function": call} for call in calls])


def message(value: Any, field_name: str) -> Message:
    """One chat message, OpenAI style (``role``/``content``, with ``tool_calls`` or ``tool_call_id``/``name``) or
    ShareGPT style (``from``/``value``, with LLaMA-Factory's ``function_call`` and ``observation`` turns).

    Tool fields are kept only where they mean something (calls on assistant messages, the call's id and name on tool
    results), so the dict has exactly the keys the row contract stores.
    """
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
    name, content = value[role_key], value.get(content_key)
    if isinstance(name, str) and name.lower() in CALL_ROLES:
        return {"role": "assistant", "content": "",
                "tool_calls": function_calls(content, f"{field_name}.{content_key}")}
    role = role_of(name, f"{field_name}.{role_key}")
    calls = value.get("tool_calls"), value.get("function_call")
    if content is None and not (role == "assistant" and any(c is not None for c in calls)):
        raise RowError("missing_field", "required key is missing", f"{field_name}.{content_key}")
    found: Message = {"role": role, "content": "" if content is None else as_text(content, f"{field_name}.{content_key}")}
    called = None
    if role == "assistant" and calls[0] is not None:
        called = tool_calls(calls[0], f"{field_name}.tool_calls")
    elif role == "assistant" and calls[1] is not None:
        called = function_calls(calls[1], f"{field_name}.function_call")
    if called is not None:
        found["tool_calls"] = called
    if role == "tool":
        for key in ("tool_call_id", "name"):
            if value.get(key) is not None:
                found[key] = as_text(value[key], f"{field_name}.{key}")
    return found


def messages(value: Any, field_name: str) -> list[Message]:
    """A list of chat messages (JSON text in a CSV cell is decoded first)."""
    value = maybe_json(value, field_name)
    if not isinstance(value, list):
        raise RowError("schema_violation", f"is a {type_name(value)}, not a list of messages", field_name)
    return [message(item, f"{field_name}[{i}]") for i, item in enumerate(value)]


def reply(value: Any, field_name: str) -> str | list[Message]:
    """A reply: a string, one message, or a list of messages (a continuation: tool calls, their results, the answer).

    `make_row` checks the continuation and stores one plain assistant message as its text, as /1 did.
    """
    value = maybe_json(value, field_name)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return [message(value, field_name)]
    if isinstance(value, list):
        return messages(value, field_name)
    raise RowError("schema_violation", f"is a {type_name(value)}, not a string or message", field_name)


def label(record: Record) -> bool | None:
    """The verdict of an unpaired (KTO) record on its reply, or None when the record carries none."""
    for key in LABEL_KEYS:
        value = record.get(key)
        if value is not None:
            if not isinstance(value, bool):
                raise RowError("bad_label", f"is a {type_name(value)}, not true or false", key)
            return value
    return None


def split_conversation(conversation: list[Message], ending: tuple[str, ...] = ("assistant",)
                       ) -> tuple[list[Message], list[Message] | None]:
    """``(prompt, continuation)``: the prompt runs to the last user message, the continuation is what follows when it
    ends with a message of a role in ``ending`` (a tool call and its result before the answer belong to the reply)."""
    last_user = max((i for i, m in enumerate(conversation) if m["role"] == "user"), default=-1)
    if last_user < 0 or last_user == len(conversation) - 1 or conversation[-1]["role"] not in ending:
        return conversation, None
    return conversation[: last_user + 1], conversation[last_user + 1 :]


def pair_row(conversation: list[Message], chosen: str | list[Message], rejected: str | list[Message], source: str,
             **fields: Any) -> dict[str, Any]:
    """Two replies to a conversation. When the conversation ends with a tool's result after its last user turn (the
    assistant called a tool before the replies differ), that shared tail is the start of both continuations; a
    conversation that ends with an assistant message is a prompt that does not end with the user's."""
    prompt, tail = split_conversation(conversation, ending=("tool",))
    if tail:
        chosen, rejected = ([*tail, *as_messages(side)] for side in (chosen, rejected))
    return make_row(prompt, chosen, rejected, source=source, **fields)


def as_messages(answer: str | list[Message]) -> list[Message]:
    return [{"role": "assistant", "content": answer}] if isinstance(answer, str) else answer


def reply_row(prompt: list[Message], answer: str | list[Message] | None, record: Record, source: str,
              used: frozenset[str] | set[str]) -> dict[str, Any]:
    """A prompt and at most one reply: a demonstration (or a prompt), or an unpaired row when the record labels the
    reply: ``label=True`` keeps it as ``chosen``, ``label=False`` as ``rejected``, so it never serves SFT."""
    verdict = label(record)
    meta = leftover_meta(record, {*used, *LABEL_KEYS})
    if verdict is None:
        return make_row(prompt, answer, source=source, meta=meta)
    chosen, rejected = (answer, None) if verdict else (None, answer)
    return make_row(prompt, chosen, rejected, label=verdict, source=source, meta=meta)


def conversation_row(conversation: list[Message], record: Record, source: str,
                     used: frozenset[str] | set[str]) -> dict[str, Any]:
    """A whole conversation: what follows the last user message is its reply (`split_conversation`)."""
    prompt, answer = split_conversation(conversation)
    return reply_row(prompt, answer, record, source, used)


def user_prompt(text_value: str, system: str | None = None) -> list[Message]:
    prompt: list[Message] = [{"role": "system", "content": system}] if system else []
    return prompt + [{"role": "user", "content": text_value}]


def leftover_meta(record: Record, used: frozenset[str] | set[str]) -> dict[str, Any]:
    """Keys the format does not read are kept in `meta`, so nothing in the input is dropped silently."""
    return {key: value for key, value in record.items() if key not in used}
