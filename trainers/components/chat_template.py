"""`prefdata.contract.render`'s templates as Jinja chat templates, so a tokenizer or checkpoint carries the exact text
format its model was trained on.

TRL, vLLM, OpenRLHF's ``--apply_chat_template`` and ``transformers serve`` render chats with
``tokenizer.apply_chat_template``; a checkpoint without a template cannot be used by them, and one with a different
template would be prompted in a format the model never saw. For every chat, ``apply_chat_template(prompt,
add_generation_prompt=True)`` equals ``render(prompt, None, template)`` and ``apply_chat_template(prompt + [reply])``
equals ``render(prompt, reply, template)`` (tests/test_consumers_chat_template.py checks both on every template).
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.errors import PrefdataError

# A turn's body, as `render` writes it: the content, then one block per tool call (the call as canonical JSON: keys
# sorted, no spaces), newline-separated, with no empty line when the content is empty. Messages come as chat templates
# take them (`prefdata.contract.render.chat_messages`: ``tool_calls`` a list).
_BODY = (
    "{%- macro body(message, open, close) -%}"
    "{%- set calls = message.tool_calls or [] -%}"
    "{%- set content = message.content or '' -%}"
    "{%- if content or not calls %}{{ content }}{% if calls %}{{ '\n' }}{% endif %}{% endif -%}"
    "{%- for call in calls -%}"
    "{{ open }}{{ call | tojson(separators=(',', ':'), sort_keys=True) }}{{ close }}"
    "{%- if not loop.last %}{{ '\n' }}{% endif -%}"
    "{%- endfor -%}"
    "{%- endmacro -%}"
    # The index of the last user message: a tool message right after it starts the reply (the prompt ends there).
    "{%- set turn = namespace(last_user=-1) -%}"
    "{%- for message in messages %}{% if message.role == 'user' %}{% set turn.last_user = loop.index0 %}{% endif %}"
    "{%- endfor -%}"
)

# dschat: "Human: …\n\nAssistant: …", a system message as a plain first paragraph, a tool result as "Tool: …" (or
# "Tool (NAME): …"), the generation prompt "Assistant:" with no space (render adds the space before a reply). A tool
# message straight after the prompt's last (user) turn leaves the assistant's turn empty ("Assistant:"), as render does.
_DSCHAT = _BODY + (
    "{%- for message in messages -%}"
    "{%- if not loop.first %}{{ '\n\n' }}{% endif -%}"
    "{%- if message.role == 'tool' and loop.index0 == turn.last_user + 1 %}{{ 'Assistant:\n\n' }}{% endif -%}"
    "{%- if message.role == 'system' -%}{{ message.content }}"
    "{%- elif message.role == 'user' -%}{{ 'Human: ' }}{{ body(message, '<tool_call>', '</tool_call>') }}"
    "{%- elif message.role == 'assistant' -%}{{ 'Assistant: ' }}{{ body(message, '<tool_call>', '</tool_call>') }}"
    "{%- elif message.role == 'tool' -%}"
    "{{ 'Tool (' + message.name + '): ' if message.name else 'Tool: ' }}{{ body(message, '<tool_call>', '</tool_call>') }}"
    "{%- else -%}{{ raise_exception('the dschat template has no role ' + message.role) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '\n\nAssistant:' }}{% endif -%}"
)

# chatml: every turn "<|im_start|>ROLE\n…<|im_end|>", a newline between turns, none after the final reply; tool calls
# as "<tool_call>\n{json}\n</tool_call>" inside the turn. A tool message straight after the prompt's last (user) turn
# leaves an empty assistant turn before it, as render does.
_CHATML = _BODY + (
    "{%- for message in messages -%}"
    "{%- if message.role == 'tool' and loop.index0 == turn.last_user + 1 -%}"
    "{{ '<|im_start|>assistant\n<|im_end|>\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message.role + '\n' }}{{ body(message, '<tool_call>\n', '\n</tool_call>') }}"
    "{{ '<|im_end|>' }}"
    "{%- if not loop.last or add_generation_prompt %}{{ '\n' }}{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif -%}"
)

CHAT_TEMPLATES: dict[str, str] = {"dschat": _DSCHAT, "chatml": _CHATML}


def chat_template_for(template: str) -> str:
    """The Jinja chat template that renders as ``render(…, template)`` does."""
    if template not in CHAT_TEMPLATES:
        raise PrefdataError(f"no chat template for {template!r}; choose one of {', '.join(CHAT_TEMPLATES)}",
                            field="template")
    return CHAT_TEMPLATES[template]


def with_training_template(tokenizer: Any, template: str) -> Any:
    """``tokenizer`` carrying the chat template of the rendering a run trained with.

    With ``--template tokenizer`` the run used the tokenizer's own template, which it keeps. The tokenizer given is not
    changed (its files are part of the token cache's key), a copy is returned.
    """
    if template not in CHAT_TEMPLATES:
        return tokenizer
    import copy

    carrying = copy.deepcopy(tokenizer)
    carrying.chat_template = CHAT_TEMPLATES[template]
    return carrying
