"""What the engine reads of a chat completion: four fields of the plain JSON reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prefdata.llm.accounting import estimate_tokens
from prefdata.llm.retry import Malformed


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    cached: bool = False


def parse_reply(reply: Any, messages: Sequence[Mapping[str, str]]) -> ChatResult:
    """The four fields we read; a reply of another shape is `Malformed`; a ``usage`` we cannot read is estimated
    (from the request's ``messages`` and the reply's text)."""
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"]
        finish_reason = choice.get("finish_reason")
    except (AttributeError, IndexError, TypeError, KeyError) as e:
        raise Malformed(f"not a chat completion ({type(e).__name__})") from None
    if not isinstance(text, str):
        raise Malformed("the reply has no message content")
    usage = reply.get("usage")
    tokens_in, tokens_out = (usage.get("prompt_tokens"), usage.get("completion_tokens")) if isinstance(
        usage, dict) else (None, None)
    if not (is_count(tokens_in) and is_count(tokens_out)):  # some servers omit usage, or send nonsense: estimate
        tokens_in = estimate_tokens(messages)
        tokens_out = -(-len(text) // 4)
    return ChatResult(text, finish_reason if isinstance(finish_reason, str) else None, tokens_in, tokens_out)


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
