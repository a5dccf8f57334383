"""Turning a prompt (and a reply) into one flat string, for tokenisation and for exports.

This is the only place a chat becomes text; stored rows never hold rendered text. For every template, the rendering of
the prompt alone is a prefix of the rendering of prompt + reply, so trainers can mask the prompt by length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefdata.contract.errors import PrefdataError

TEMPLATES = ("dschat", "chatml", "tokenizer")
_DSCHAT_SPEAKER = {"user": "Human", "assistant": "Assistant"}


def _render_dschat(prompt: Sequence[Mapping[str, str]], reply: str | None) -> str:
    # DeepSpeed-Chat convention: "Human: …\n\nAssistant: …"; a system message becomes a plain first paragraph.
    parts = []
    for message in prompt:
        if message["role"] == "system":
            parts.append(message["content"])
        else:
            parts.append(f"{_DSCHAT_SPEAKER[message['role']]}: {message['content']}")
    text = "\n\n".join(parts) + "\n\nAssistant:"
    return text if reply is None else f"{text} {reply}"


def _render_chatml(prompt: Sequence[Mapping[str, str]], reply: str | None) -> str:
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in prompt) + "<|im_start|>assistant\n"
    return text if reply is None else f"{text}{reply}<|im_end|>"


def _render_tokenizer(prompt: Sequence[Mapping[str, str]], reply: str | None, tokenizer: Any) -> str:
    if tokenizer is None:
        raise PrefdataError("the 'tokenizer' template needs a tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise PrefdataError("the tokenizer has no chat template; use --template dschat or chatml")
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if reply is None:
        return head
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": reply}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(head):
        raise PrefdataError("the tokenizer's chat template does not render the prompt as a prefix of the full chat")
    return full


def render(
    prompt: Sequence[Mapping[str, str]], reply: str | None = None, template: str = "dschat", tokenizer: Any = None
) -> str:
    """Render ``prompt`` (ending with a user turn) and, if given, the assistant ``reply`` with a named template.

    Without a reply the result ends where the assistant's reply would begin (a generation prompt).
    """
    if template == "dschat":
        return _render_dschat(prompt, reply)
    if template == "chatml":
        return _render_chatml(prompt, reply)
    if template == "tokenizer":
        return _render_tokenizer(prompt, reply, tokenizer)
    raise PrefdataError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
