"""Turning a prompt (and a reply) into one flat string, for tokenisation and for exports.

This is the only place a chat becomes text; stored rows never hold rendered text. For every template, the rendering of
the prompt alone is a prefix of the rendering of prompt + reply, so trainers can mask the prompt by length.

A reply is text (one assistant message) or a continuation: a list of assistant and tool messages
(`prefdata.contract.row.reply_messages`). Tool calls (``tool_calls``, canonical JSON of the OpenAI-style list) render
one ``<tool_call>`` block per call, each call as its canonical JSON; a tool result is a turn of its own. A continuation
of one plain assistant message renders exactly as its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.rules import TOOL_FIELDS, canonical_json

TEMPLATES = ("dschat", "chatml", "tokenizer")
_DSCHAT_SPEAKER = {"user": "Human", "assistant": "Assistant", "tool": "Tool"}
Messages = Sequence[Mapping[str, Any]]
Reply = str | Messages | None


def _calls(message: Mapping[str, Any]) -> list[str]:
    """Each tool call of a message as canonical JSON (none for a message without ``tool_calls``)."""
    calls = message.get("tool_calls")
    return [canonical_json(call) for call in json.loads(calls)] if calls else []


def _body(message: Mapping[str, Any], call_block: str) -> str:
    """A turn's text: the content, then one ``call_block`` per call, newline-separated (an empty content leaves no
    empty line before the calls, as Qwen's chat templates write them)."""
    blocks = [call_block.format(call) for call in _calls(message)]
    return "\n".join([message["content"], *blocks] if message["content"] or not blocks else blocks)


def _split_reply(reply: Messages) -> tuple[Mapping[str, Any] | None, Messages]:
    """``(first, rest)``: a continuation's first message fills the assistant turn the prompt opened, when it is an
    assistant message; otherwise that turn stays empty and every message is a turn of its own."""
    return (reply[0], reply[1:]) if reply and reply[0]["role"] == "assistant" else (None, reply)


_DSCHAT_CALL = "<tool_call>{}</tool_call>"
_CHATML_CALL = "<tool_call>\n{}\n</tool_call>"


def _dschat_turn(message: Mapping[str, Any]) -> str:
    if message["role"] == "system":
        return message["content"]
    speaker = _DSCHAT_SPEAKER[message["role"]]
    if message["role"] == "tool" and message.get("name"):
        speaker = f"Tool ({message['name']})"
    return f"{speaker}: {_body(message, _DSCHAT_CALL)}"


def _render_dschat(prompt: Messages, reply: Reply) -> str:
    # DeepSpeed-Chat convention: "Human: …\n\nAssistant: …"; a system message becomes a plain first paragraph.
    text = "\n\n".join(map(_dschat_turn, prompt)) + "\n\nAssistant:"
    if reply is None:
        return text
    if isinstance(reply, str):
        return f"{text} {reply}"
    first, rest = _split_reply(reply)
    head = text if first is None else f"{text} {_body(first, _DSCHAT_CALL)}"
    return "".join([head, *(f"\n\n{_dschat_turn(m)}" for m in rest)])


def _chatml_turn(message: Mapping[str, Any]) -> str:
    return f"<|im_start|>{message['role']}\n{_body(message, _CHATML_CALL)}<|im_end|>"


def _render_chatml(prompt: Messages, reply: Reply) -> str:
    text = "".join(f"{_chatml_turn(m)}\n" for m in prompt) + "<|im_start|>assistant\n"
    if reply is None:
        return text
    if isinstance(reply, str):
        return f"{text}{reply}<|im_end|>"
    first, rest = _split_reply(reply)
    head = f"{text}{'' if first is None else _body(first, _CHATML_CALL)}<|im_end|>"
    return "".join([head, *(f"\n{_chatml_turn(m)}" for m in rest)])


def chat_messages(messages: Messages) -> list[dict[str, Any]]:
    """Messages as chat templates (and OpenAI-style APIs) take them: ``tool_calls`` as a list, unset fields left out."""
    out = []
    for m in messages:
        message: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        for key in TOOL_FIELDS:
            if m.get(key) is not None:
                message[key] = json.loads(m[key]) if key == "tool_calls" else m[key]
        out.append(message)
    return out


def _render_tokenizer(prompt: Messages, reply: Reply, tokenizer: Any) -> str:
    if tokenizer is None:
        raise PrefdataError("the 'tokenizer' template needs a tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise PrefdataError("the tokenizer has no chat template; use --template dschat or chatml")
    messages = chat_messages(prompt)
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if reply is None:
        return head
    replies = [{"role": "assistant", "content": reply}] if isinstance(reply, str) else chat_messages(reply)
    full = tokenizer.apply_chat_template([*messages, *replies], tokenize=False, add_generation_prompt=False)
    if not full.startswith(head):
        raise PrefdataError("the tokenizer's chat template does not render the prompt as a prefix of the full chat")
    return full


def render(prompt: Messages, reply: Reply = None, template: str = "dschat", tokenizer: Any = None) -> str:
    """Render ``prompt`` (ending with a user turn) and, if given, the ``reply`` (text, or a continuation's messages)
    with a named template.

    Without a reply the result ends where the assistant's reply would begin (a generation prompt).
    """
    if template == "dschat":
        return _render_dschat(prompt, reply)
    if template == "chatml":
        return _render_chatml(prompt, reply)
    if template == "tokenizer":
        return _render_tokenizer(prompt, reply, tokenizer)
    raise PrefdataError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
