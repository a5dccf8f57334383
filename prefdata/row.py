"""The canonical row (`prefdata.preference/1`) and the unsupervised-text row (`prefdata.unsup/1`).

Every source ends here: adapters produce plain dicts through `make_row`, which checks the row and gives it its stable
`id` and default `group`. Rows stay as plain Python dicts (cheap to build, easy to test); `PREFERENCE_SCHEMA` is the Arrow
type they are stored with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring  # the C string encoder json.dumps(ensure_ascii=False) uses
from typing import Any, Literal

import pyarrow as pa

from prefdata.errors import RowError

PREFERENCE_SCHEMA_ID = "prefdata.preference/1"
UNSUP_SCHEMA_ID = "prefdata.unsup/1"
ROLES = ("system", "user", "assistant")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
PREFERENCE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("group", pa.string()),
        ("prompt", pa.list_(MESSAGE_TYPE)),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("chosen_score", pa.float64()),
        ("rejected_score", pa.float64()),
        ("meta", pa.string()),
    ]
)
UNSUP_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("meta", pa.string())])
SCHEMAS = {PREFERENCE_SCHEMA_ID: PREFERENCE_SCHEMA, UNSUP_SCHEMA_ID: UNSUP_SCHEMA}

Message = dict[str, str]
RowKind = Literal["pair", "demonstration", "scored", "prompt_only"]


_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_json(value: Any) -> str:
    """The one JSON spelling used for hashing and for `meta`: sorted keys, no spaces, UTF-8 kept as is."""
    return _CANONICAL.encode(value)  # what json.dumps does with these options, without building an encoder per call


def _hash16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _messages_json(messages: list[Message]) -> str:
    """`canonical_json` of checked messages (exactly the string keys role and content), spelled out: ~5x faster."""
    return "[" + ",".join(
        f'{{"content":{encode_basestring(m["content"])},"role":{encode_basestring(m["role"])}}}' for m in messages
    ) + "]"


def _reply_json(reply: str | None) -> str:
    return "null" if reply is None else encode_basestring(reply)


def short_hash(value: Any) -> str:
    """First 16 hex chars of sha256 over the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:16]


def row_id(prompt: Sequence[Message], chosen: str | None, rejected: str | None) -> str:
    """Identical content gives an identical id, whatever the source or the order of keys in the input."""
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return short_hash([messages, chosen, rejected])


def prompt_group(prompt: Sequence[Message]) -> str:
    """Default `group`: rows that share a prompt stay in the same phase and part of the split."""
    return short_hash([{"role": m["role"], "content": m["content"]} for m in prompt])


def unsup_id(text: str) -> str:
    return short_hash(["unsup", text])


def _check_prompt(prompt: Any) -> list[Message]:
    if not isinstance(prompt, list) or not prompt:
        raise RowError("empty_prompt", "the prompt has no messages", "prompt")
    messages: list[Message] = []
    for i, message in enumerate(prompt):
        if type(message) is not dict and not isinstance(message, Mapping):
            raise RowError("schema_violation", f"message {i} is {type(message).__name__}, not an object", f"prompt[{i}]")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowError("bad_role", f"role {role!r} is not one of {', '.join(ROLES)}", f"prompt[{i}].role")
        if not isinstance(content, str):
            raise RowError(
                "schema_violation", f"content is {type(content).__name__}, not a string", f"prompt[{i}].content"
            )
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise RowError("prompt_not_ending_with_user", "the prompt must end with a user message", "prompt")
    if all(m["content"].isspace() or not m["content"] for m in messages if m["role"] == "user"):  # no strip() copies
        raise RowError("empty_prompt", "every user message in the prompt is empty", "prompt")
    return messages


def _check_reply(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError("schema_violation", f"is {type(value).__name__}, not a string", field)
    if not value or value.isspace():  # the same test as `not value.strip()`, without copying the text
        raise RowError("empty_reply", "the reply is empty", field)
    return value


def _check_score(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("schema_violation", f"is {type(value).__name__}, not a number", field)
    score = float(value)
    if score != score or score in (float("inf"), float("-inf")):
        raise RowError("schema_violation", "is not a finite number", field)
    return score


def make_row(
    prompt: Sequence[Mapping[str, Any]],
    chosen: str | None = None,
    rejected: str | None = None,
    *,
    source: str,
    group: str | None = None,
    chosen_score: float | None = None,
    rejected_score: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check one row against the contract and return it as a dict in `PREFERENCE_SCHEMA` column order.

    Raises `RowError` with a reason code for what the contract forbids: an empty prompt or reply, a prompt that does
    not end with a user turn, a `rejected` without a `chosen`, and identical chosen and rejected replies.
    """
    messages = _check_prompt(list(prompt) if not isinstance(prompt, list) else prompt)
    chosen = _check_reply(chosen, "chosen")
    rejected = _check_reply(rejected, "rejected")
    if rejected is not None and chosen is None:
        raise RowError("missing_field", "a rejected reply needs a chosen reply", "chosen")
    if rejected is not None and chosen == rejected:
        raise RowError("identical_pair", "chosen and rejected are identical", "rejected")
    # The prompt's JSON is built once for both hashes; the id text equals canonical_json([messages, chosen, rejected]).
    prompt_json = _messages_json(messages)
    return {
        "id": _hash16(f"[{prompt_json},{_reply_json(chosen)},{_reply_json(rejected)}]"),
        "source": source,
        "group": group if group is not None else _hash16(prompt_json),
        "prompt": messages,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": _check_score(chosen_score, "chosen_score"),
        "rejected_score": _check_score(rejected_score, "rejected_score"),
        "meta": canonical_json(dict(meta)) if meta else "{}",
    }


def make_unsup_row(text: str, *, source: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A `prefdata.unsup/1` row; ``meta`` keeps source fields worth keeping (a red-team attempt's rating, …)."""
    if not isinstance(text, str):
        raise RowError("schema_violation", f"is {type(text).__name__}, not a string", "text")
    if not text.strip():
        raise RowError("empty_text", "the text is empty", "text")
    return {"id": unsup_id(text), "source": source, "text": text, "meta": canonical_json(dict(meta or {}))}


def row_kind(row: Mapping[str, Any]) -> RowKind:
    """What a row can be used for (design §1)."""
    if row.get("chosen") is None:
        return "prompt_only"
    if row.get("rejected") is not None:
        return "pair"
    if row.get("chosen_score") is not None:
        return "scored"
    return "demonstration"


def row_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(row.get("meta") or "{}")
