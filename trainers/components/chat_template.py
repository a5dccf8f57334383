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

# dschat: "Human: …\n\nAssistant: …", a system message as a plain first paragraph, the generation prompt "Assistant:"
# with no space (render adds the space before a reply).
_DSCHAT = (
    "{%- for message in messages -%}"
    "{%- if not loop.first %}{{ '\n\n' }}{% endif -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] }}"
    "{%- elif message['role'] == 'user' -%}{{ 'Human: ' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' + message['content'] }}"
    "{%- else -%}{{ raise_exception('the dschat template has no role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '\n\nAssistant:' }}{% endif -%}"
)

# chatml: every turn "<|im_start|>ROLE\n…<|im_end|>", a newline between turns, none after the final reply.
_CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
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
