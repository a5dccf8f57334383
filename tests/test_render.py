"""One rendering function with named templates; the prompt rendering is always a prefix of the full rendering."""

from __future__ import annotations

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import render

PROMPT = [
    {"role": "user", "content": "How do I keep basil fresh?"},
    {"role": "assistant", "content": "Do you keep it in the fridge?"},
    {"role": "user", "content": "Yes."},
]


def test_dschat_matches_the_deepspeed_chat_convention():
    assert render(PROMPT, "Keep it in water on the counter instead.") == (
        "Human: How do I keep basil fresh?\n\nAssistant: Do you keep it in the fridge?\n\nHuman: Yes.\n\n"
        "Assistant: Keep it in water on the counter instead."
    )
    assert render(PROMPT).endswith("\n\nAssistant:")


def test_chatml():
    text = render(PROMPT[:1], "Water.", template="chatml")
    assert text == (
        "<|im_start|>user\nHow do I keep basil fresh?<|im_end|>\n<|im_start|>assistant\nWater.<|im_end|>"
    )


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_prompt_is_prefix_of_full(template):
    assert render(PROMPT, "Reply.", template=template).startswith(render(PROMPT, template=template))


def test_tokenizer_template_uses_the_tokenizers_chat_template():
    class FakeTokenizer:
        chat_template = "set"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            text = "".join(f"[{m['role']}]{m['content']}" for m in messages)
            return text + ("[assistant]" if add_generation_prompt else "")

    tok = FakeTokenizer()
    assert render(PROMPT[:1], template="tokenizer", tokenizer=tok) == "[user]How do I keep basil fresh?[assistant]"
    assert render(PROMPT[:1], "Water.", template="tokenizer", tokenizer=tok).endswith("[assistant]Water.")


def test_unknown_template_and_missing_tokenizer_are_user_errors():
    with pytest.raises(PrefdataError):
        render(PROMPT, template="alpaca")
    with pytest.raises(PrefdataError):
        render(PROMPT, template="tokenizer")
