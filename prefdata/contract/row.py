"""The canonical row (`prefdata.preference/2`) and the unsupervised-text row (`prefdata.unsup/1`).

Every source ends here: adapters produce plain dicts through `make_row`, which checks the row and gives it its stable
`id` and default `group`. Rows stay as plain Python dicts (cheap to build, easy to test); `PREFERENCE_SCHEMA` is the Arrow
type they are stored with. /2 adds, to /1's columns, replies given as several messages (``chosen_turns``,
``rejected_turns``: tool calls and results) and unpaired labelled replies (``label``); every row /1 could hold keeps
its id. `PREFERENCE_V1_SCHEMA` stays known so that /1 directories are read (`prefdata.storage.dataset` upgrades them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring  # the C string encoder json.dumps(ensure_ascii=False) uses
from typing import Any, Literal

import pyarrow as pa

from prefdata.contract import nesting
from prefdata.contract.errors import RowError
from prefdata.contract.rules import (
    ROLES,
    TOOL_FIELDS,
    Reply,
    check_continuation,
    check_pair,
    check_prompt,
    check_score,
    check_sides,
    check_text_reply,
    check_turns,
    check_unsup_text,
    is_plain,
)
from prefdata.contract.rules import Message as Message  # re-exported: the formats type their messages with it
from prefdata.contract.rules import canonical_json as canonical_json  # re-exported: its home before /2

PREFERENCE_SCHEMA_ID = "prefdata.preference/2"
PREFERENCE_V1_SCHEMA_ID = "prefdata.preference/1"
PREFERENCE_SCHEMA_IDS = (PREFERENCE_SCHEMA_ID, PREFERENCE_V1_SCHEMA_ID)  # what readers accept as preference rows
UNSUP_SCHEMA_ID = "prefdata.unsup/1"

MESSAGE_V1_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
# tool_calls: canonical JSON of the OpenAI-style call list (assistant messages); tool_call_id, name: tool messages.
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string()),
                          *((key, pa.string()) for key in TOOL_FIELDS)])
_V1_COLUMNS = [
    ("id", pa.string()),
    ("source", pa.string()),
    ("group", pa.string()),
    ("prompt", pa.list_(MESSAGE_V1_TYPE)),
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("chosen_score", pa.float64()),
    ("rejected_score", pa.float64()),
    ("meta", pa.string()),
]
TURNS_COLUMNS = ("chosen_turns", "rejected_turns")
V2_COLUMNS = (*TURNS_COLUMNS, "label")  # what /2 adds; null on every row /1 could hold
PREFERENCE_V1_SCHEMA = pa.schema(_V1_COLUMNS)
PREFERENCE_SCHEMA = pa.schema(
    [(name, pa.list_(MESSAGE_TYPE) if name == "prompt" else data_type) for name, data_type in _V1_COLUMNS]
    + [(name, pa.list_(MESSAGE_TYPE)) for name in TURNS_COLUMNS] + [("label", pa.bool_())]
)
UNSUP_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("meta", pa.string())])
# The first is what `DatasetWriter` writes by default; /1 is read only.
SCHEMAS = {PREFERENCE_SCHEMA_ID: PREFERENCE_SCHEMA, UNSUP_SCHEMA_ID: UNSUP_SCHEMA,
           PREFERENCE_V1_SCHEMA_ID: PREFERENCE_V1_SCHEMA}

RowKind = Literal["pair", "demonstration", "scored", "prompt_only", "unpaired"]
Side = Literal["chosen", "rejected"]


_CONTENT_HEAD = '{"content":'
_ROLE_TAIL = {role: f',"role":{encode_basestring(role)}}}' for role in ROLES}
# Bytes that never occur in UTF-8: they mark, in the joined contents, where a message of each role ends.
_ROLE_MARK = {"system": b"\xfd", "user": b"\xfe", "assistant": b"\xff", "tool": b"\xfc"}
_ROLE_GLUE = tuple((mark, f'","role":"{role}"}},{{"content":"'.encode()) for role, mark in _ROLE_MARK.items())
_GLUE_TAIL = len(b',{"content":"')
_CONTROLS_BUT_NEWLINE = bytes(c for c in range(0x20) if c != 0x0A)  # what encode_basestring spells as escapes


def _turns_json(roles: Sequence[str], contents: Sequence[str]) -> str:
    """`canonical_json` of messages with checked roles and string contents, spelled out: ~5x faster.

    Sorted keys put "content" before "role"; C-level `map`s build the list, with no Python frame per message.
    """
    heads = map(_CONTENT_HEAD.__add__, map(encode_basestring, contents))
    return "[" + ",".join(map(str.__add__, heads, map(_ROLE_TAIL.__getitem__, roles))) + "]"


def _reply_json(reply: str | None) -> str:
    return "null" if reply is None else encode_basestring(reply)


def _escape_utf8(data: bytes) -> bytes | None:
    """``encode_basestring(text)`` (without quotes) as UTF-8, from ``text``'s UTF-8; None if it has a control
    character other than newline (those take the generic path). Escapes touch only ASCII bytes, which never occur
    inside a multi-byte UTF-8 sequence, so escaping the bytes equals encoding the escaped text; a few C-speed byte
    passes instead of `encode_basestring`'s per-character loop."""
    if len(data.translate(None, _CONTROLS_BUT_NEWLINE)) != len(data):
        return None
    return data.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")


def _reply_utf8(reply: str | None) -> bytes | None:
    if reply is None:
        return b"null"
    body = _escape_utf8(reply.encode("utf-8"))
    return None if body is None else b'"' + body + b'"'


def _ids_utf8(roles: Sequence[str], contents: Sequence[str], chosen: str | None, rejected: str | None):
    """`_ids` built on UTF-8 bytes (see `_escape_utf8`): all contents escaped in one pass; None where it cannot."""
    if not roles:
        return None
    marked = b"".join(map(bytes.__add__, map(str.encode, contents), map(_ROLE_MARK.__getitem__, roles)))
    body = _escape_utf8(marked)
    chosen_json, rejected_json = _reply_utf8(chosen), _reply_utf8(rejected)
    if body is None or chosen_json is None or rejected_json is None:
        return None
    for mark, glue in _ROLE_GLUE:
        body = body.replace(mark, glue)
    prompt = b'[{"content":"' + body[:-_GLUE_TAIL] + b"]"
    return (hashlib.sha256(b"[" + prompt + b"," + chosen_json + b"," + rejected_json + b"]").hexdigest()[:16],
            hashlib.sha256(prompt).hexdigest()[:16])


def _ids(roles: Sequence[str], contents: Sequence[str], chosen: str | None, rejected: str | None) -> tuple[str, str]:
    """``(row_id, prompt_group)`` of checked messages: sha256 of ``canonical_json([messages, chosen, rejected])`` and
    of ``canonical_json(messages)``, the prompt's JSON built once for both."""
    try:
        fast = _ids_utf8(roles, contents, chosen, rejected)
    except UnicodeEncodeError:  # a lone surrogate: the generic path raises the error row_id would raise
        fast = None
    if fast is not None:
        return fast
    prompt_json = _turns_json(roles, contents)
    id_text = f"[{prompt_json},{_reply_json(chosen)},{_reply_json(rejected)}]"
    return _hash16(id_text), _hash16(prompt_json)


def _hash16(text: str) -> str:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON can spell a lone surrogate ("\ud800"); it is not text and has no UTF-8
        raise RowError("bad_unicode", f"contains an unpaired surrogate ({text[e.start]!r}), which is not valid text"
                       ) from None
    return hashlib.sha256(data).hexdigest()[:16]


def _meta_json(meta: Mapping[str, Any] | None) -> str:
    if not meta:
        return "{}"
    text = canonical_json(dict(meta))
    _hash16(text)  # refuses what cannot be stored as UTF-8 (a lone surrogate in an unread input field)
    return text


def short_hash(value: Any) -> str:
    """First 16 hex chars of sha256 over the canonical JSON of ``value``."""
    return _hash16(canonical_json(value))


def _set_fields(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as ids hash them: role, content and the tool fields that are set, whatever else the dicts hold."""
    return [{"role": m["role"], "content": m["content"],
             **{key: m[key] for key in TOOL_FIELDS if m.get(key) is not None}} for m in messages]


def _id_material(prompt: list[dict[str, Any]], chosen: Reply, rejected: Reply, label: bool | None) -> list[Any]:
    replies = [reply if reply is None or isinstance(reply, str) else _set_fields(reply) for reply in (chosen, rejected)]
    return [prompt, *replies] if label is None else [prompt, *replies, label]


def row_id(prompt: Sequence[Mapping[str, Any]], chosen: Reply, rejected: Reply, label: bool | None = None) -> str:
    """Identical content gives an identical id, whatever the source or the order of keys in the input.

    A reply is its text, or its messages when it is a continuation (`reply`); ``label`` counts only when set, so
    every row /1 could hold keeps its /1 id."""
    return short_hash(_id_material(_set_fields(prompt), chosen, rejected, label))


def stored_row_id(row: Mapping[str, Any]) -> str:
    """The id a stored preference row's content hashes to (what `make_row` gave it)."""
    return row_id(row["prompt"], reply(row, "chosen"), reply(row, "rejected"), row.get("label"))


def prompt_group(prompt: Sequence[Mapping[str, Any]]) -> str:
    """Default `group`: rows that share a prompt stay in the same phase and part of the split."""
    return short_hash(_set_fields(prompt))


def unsup_id(text: str) -> str:
    return short_hash(["unsup", text])


def make_row(
    prompt: Sequence[Mapping[str, Any]],
    chosen: str | Sequence[Mapping[str, Any]] | None = None,
    rejected: str | Sequence[Mapping[str, Any]] | None = None,
    *,
    source: str,
    group: str | None = None,
    chosen_score: float | None = None,
    rejected_score: float | None = None,
    meta: Mapping[str, Any] | None = None,
    label: bool | None = None,
) -> dict[str, Any]:
    """Check one row against the contract (`prefdata.contract.rules`) and return it as a dict in `PREFERENCE_SCHEMA`
    column order; the first broken rule is raised as a `RowError` with its reason code.

    ``chosen``/``rejected`` are text or a continuation (a list of messages; one plain assistant message is stored as
    its text). ``label`` makes an unpaired row: True with only ``chosen``, False with only ``rejected``."""
    messages = check_prompt(list(prompt) if not isinstance(prompt, list) else prompt)
    chosen_text, chosen_turns = check_continuation(chosen, "chosen")
    rejected_text, rejected_turns = check_continuation(rejected, "rejected")
    chosen_reply = chosen_text if chosen_turns is None else chosen_turns
    rejected_reply = rejected_text if rejected_turns is None else rejected_turns
    check_sides(chosen_reply, rejected_reply, label)
    if label is None and chosen_turns is None and rejected_turns is None and all(map(is_plain, messages)):
        row_id_, default_group = _ids([m["role"] for m in messages], [m["content"] for m in messages], chosen_text,
                                      rejected_text)
    else:  # the /2 shapes: hashed as `row_id` spells them (no fast path; they are rare)
        row_id_ = short_hash(_id_material(messages, chosen_reply, rejected_reply, label))
        default_group = short_hash(messages)
    return {
        "id": row_id_,
        "source": source,
        "group": group if group is not None else default_group,
        "prompt": messages,
        "chosen": chosen_text,
        "rejected": rejected_text,
        "chosen_score": check_score(chosen_score, "chosen_score"),
        "rejected_score": check_score(rejected_score, "rejected_score"),
        "meta": _meta_json(meta),
        "chosen_turns": chosen_turns,
        "rejected_turns": rejected_turns,
        "label": label,
    }


def check_turns_pair(roles: list[str], contents: list[str], chosen: str, rejected: str) -> tuple[str, str]:
    """`make_row`'s checks and ids for a pair whose prompt a source parser split itself: ``(id, group)``.

    The parser guarantees what `make_row` would check per message (``roles`` are ``user``/``assistant``, every
    content and both replies are strings), so only the rules that can still fail run, in `make_row`'s order.
    """
    check_turns(roles, contents)
    check_text_reply(chosen, "chosen")
    check_text_reply(rejected, "rejected")
    check_pair(chosen, rejected)
    return _ids(roles, contents, chosen, rejected)


def make_row_from_turns(
    roles: list[str], contents: list[str], chosen: str, rejected: str, *, source: str
) -> dict[str, Any]:
    """`make_row(prompt, chosen, rejected, source=source)` for a prompt given as parallel role and content lists
    (see `check_turns_pair`): the same dict, the same `RowError`s, less work."""
    row_id_, group = check_turns_pair(roles, contents, chosen, rejected)
    return {
        "id": row_id_,
        "source": source,
        "group": group,
        "prompt": [{"role": role, "content": content} for role, content in zip(roles, contents)],
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": None,
        "rejected_score": None,
        "meta": "{}",
        "chosen_turns": None,
        "rejected_turns": None,
        "label": None,
    }


def make_unsup_row(text: str, *, source: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A `prefdata.unsup/1` row; ``meta`` keeps source fields worth keeping (a red-team attempt's rating, …)."""
    check_unsup_text(text)
    return {"id": unsup_id(text), "source": source, "text": text, "meta": _meta_json(meta)}


def has_reply(row: Mapping[str, Any], side: Side) -> bool:
    """Whether ``side`` ("chosen"/"rejected") holds a reply, as text or as turns (a /1 row has no turns)."""
    return row.get(side) is not None or row.get(f"{side}_turns") is not None


def reply(row: Mapping[str, Any], side: Side) -> Reply:
    """A side's reply as ids and `contract.render.render` take it: the turns when set, else the text (or None)."""
    turns = row.get(f"{side}_turns")
    return row.get(side) if turns is None else turns


def reply_messages(row: Mapping[str, Any], side: Side) -> list[dict[str, Any]] | None:
    """A side's reply as messages: its turns, or its text as one assistant message, or None. Use this (or `reply`)
    instead of ``row["chosen"]`` wherever a continuation may have turns."""
    value = reply(row, side)
    if value is None or not isinstance(value, str):
        return value
    return [{"role": "assistant", "content": value}]


def row_kind(row: Mapping[str, Any]) -> RowKind:
    """What a row can be used for (design §1); a labelled row is ``unpaired`` whatever side its reply is on."""
    if row.get("label") is not None:
        return "unpaired"
    if not has_reply(row, "chosen"):
        return "prompt_only"
    if has_reply(row, "rejected"):
        return "pair"
    if row.get("chosen_score") is not None:
        return "scored"
    return "demonstration"


def row_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's `meta` as a dict; decoded with the depth limit, so a tampered deep `meta` is an error, not a crash."""
    return nesting.loads(row.get("meta") or "{}", nesting.DOCUMENT_DEPTH)
