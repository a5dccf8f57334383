"""Tests that kill mutants of `trainers/components/chat_template.py` (issue #15): both Jinja templates rendered the way
`tokenizer.apply_chat_template` renders them (transformers' `render_jinja_template`, no tokenizer needed), on chats
with a system turn, tool calls (with and without content), named and unnamed tool results and a tool result right
after the last user turn; every expected string is written out by hand.

mutmut mutates function bodies only, so its mutants here are those of `chat_template_for` and
`with_training_template`; the Jinja text itself (module constants) is pinned by the hand-written renderings below.
No equivalent survivors.
"""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers", reason="the trainers need the train extra")
from jinja2.exceptions import TemplateError  # noqa: E402
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components.chat_template import CHAT_TEMPLATES, chat_template_for, with_training_template  # noqa: E402

# Keys out of order on purpose: the template writes each call as JSON with sorted keys and no spaces.
CALL_1 = {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
CALL_2 = {"id": "c2", "type": "function", "function": {"name": "see", "arguments": "{}"}}
JSON_1 = '{"function":{"arguments":"{}","name":"look"},"id":"c1","type":"function"}'
JSON_2 = '{"function":{"arguments":"{}","name":"see"},"id":"c2","type":"function"}'

SYSTEM_CHAT = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi?"},
               {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "And?"}]
TOOL_CHAT = [
    {"role": "user", "content": "Find it."},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL_1, CALL_2]},
    {"role": "tool", "content": "found", "name": "look"},
    {"role": "tool", "content": "ok"},
    {"role": "assistant", "content": "", "tool_calls": [CALL_1]},
    {"role": "assistant", "content": "Here."},
]
TOOL_FIRST = [{"role": "user", "content": "Run it."}, {"role": "tool", "content": "done", "name": "run"},
              {"role": "assistant", "content": "Fine."}]


def apply(template: str, messages: list[dict], generation: bool) -> str:
    rendered, _ = render_jinja_template([messages], chat_template=chat_template_for(template),
                                        add_generation_prompt=generation)
    return rendered[0]


def test_dschat_system_turns_and_generation_prompt():
    assert apply("dschat", SYSTEM_CHAT, True) == "Be terse.\n\nHuman: Hi?\n\nAssistant: Yes.\n\nHuman: And?\n\nAssistant:"
    assert apply("dschat", SYSTEM_CHAT, False) == "Be terse.\n\nHuman: Hi?\n\nAssistant: Yes.\n\nHuman: And?"


def test_chatml_system_turns_and_generation_prompt():
    turns = ("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n"
             "<|im_start|>assistant\nYes.<|im_end|>\n<|im_start|>user\nAnd?<|im_end|>")
    assert apply("chatml", SYSTEM_CHAT, True) == turns + "\n<|im_start|>assistant\n"
    assert apply("chatml", SYSTEM_CHAT, False) == turns


def test_dschat_tool_calls_and_results():
    assert apply("dschat", TOOL_CHAT, False) == (
        "Human: Find it.\n\n"
        f"Assistant: Let me look.\n<tool_call>{JSON_1}</tool_call>\n<tool_call>{JSON_2}</tool_call>\n\n"
        "Tool (look): found\n\nTool: ok\n\n"
        f"Assistant: <tool_call>{JSON_1}</tool_call>\n\n"
        "Assistant: Here.")


def test_chatml_tool_calls_and_results():
    assert apply("chatml", TOOL_CHAT, False) == (
        "<|im_start|>user\nFind it.<|im_end|>\n"
        f"<|im_start|>assistant\nLet me look.\n<tool_call>\n{JSON_1}\n</tool_call>\n<tool_call>\n{JSON_2}\n"
        "</tool_call><|im_end|>\n"
        "<|im_start|>tool\nfound<|im_end|>\n<|im_start|>tool\nok<|im_end|>\n"
        f"<|im_start|>assistant\n<tool_call>\n{JSON_1}\n</tool_call><|im_end|>\n"
        "<|im_start|>assistant\nHere.<|im_end|>")


def test_a_tool_result_right_after_the_last_user_turn_leaves_the_assistant_turn_empty():
    assert apply("dschat", TOOL_FIRST, False) == "Human: Run it.\n\nAssistant:\n\nTool (run): done\n\nAssistant: Fine."
    assert apply("chatml", TOOL_FIRST, False) == (
        "<|im_start|>user\nRun it.<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>tool\ndone<|im_end|>\n<|im_start|>assistant\nFine.<|im_end|>")


def test_dschat_refuses_a_role_it_has_no_turn_for():
    with pytest.raises(TemplateError, match="the dschat template has no role critic"):
        apply("dschat", [{"role": "critic", "content": "x"}], False)


def test_an_unknown_template_is_a_prefdata_error_naming_the_choices():
    with pytest.raises(PrefdataError, match="no chat template for 'tokenizer'; choose one of dschat, chatml") as e:
        chat_template_for("tokenizer")
    assert e.value.field == "template"
    assert chat_template_for("chatml") == CHAT_TEMPLATES["chatml"]


class Tok:
    chat_template = "own"


def test_the_training_template_goes_on_a_copy_and_tokenizer_keeps_its_own():
    original = Tok()
    original.chat_template = "own"
    carrying = with_training_template(original, "dschat")
    assert carrying is not original and carrying.chat_template == CHAT_TEMPLATES["dschat"]
    assert original.chat_template == "own"
    assert with_training_template(original, "tokenizer") is original


def test_the_copy_shares_no_vocabulary_with_the_tokenizer_given():
    """A shallow copy would share the Rust backend: a token added to the copy would change the original, whose files
    key the token cache."""
    from tokenizers import Tokenizer, models

    backend = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    original = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="a")
    carrying = with_training_template(original, "chatml")
    carrying.add_tokens(["zz"])
    assert (len(original), len(carrying)) == (2, 3)
