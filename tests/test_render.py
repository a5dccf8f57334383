"""One rendering function with named templates; the prompt rendering is always a prefix of the full rendering."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------------------------------------------- /2: continuations and tools

CALL = [{"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a":6,"b":7}'}}]
CALL_JSON = '{"function":{"arguments":"{\\"a\\":6,\\"b\\":7}","name":"mul"},"id":"c1","type":"function"}'
TOOL_TURNS = [{"role": "assistant", "content": "", "tool_calls": json.dumps(CALL)},
              {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "mul"},
              {"role": "assistant", "content": "It is 42."}]
ASK = [{"role": "user", "content": "What is 6 x 7?"}]


def test_dschat_renders_tool_calls_and_results_as_the_spec_says():
    assert render(ASK, TOOL_TURNS) == (
        f"Human: What is 6 x 7?\n\nAssistant: <tool_call>{CALL_JSON}</tool_call>\n\nTool (mul): 42\n\n"
        "Assistant: It is 42.")
    with_text = [{**TOOL_TURNS[0], "content": "Let me compute."}, {"role": "tool", "content": "42"}, TOOL_TURNS[2]]
    assert render(ASK, with_text) == (
        f"Human: What is 6 x 7?\n\nAssistant: Let me compute.\n<tool_call>{CALL_JSON}</tool_call>\n\nTool: 42\n\n"
        "Assistant: It is 42.")


def test_chatml_renders_tool_calls_and_results_as_the_spec_says():
    assert render(ASK, TOOL_TURNS, template="chatml") == (
        "<|im_start|>user\nWhat is 6 x 7?<|im_end|>\n<|im_start|>assistant\n"
        f"<tool_call>\n{CALL_JSON}\n</tool_call><|im_end|>\n<|im_start|>tool\n42<|im_end|>\n"
        "<|im_start|>assistant\nIt is 42.<|im_end|>")


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_one_plain_assistant_message_renders_as_its_text(template):
    assert render(PROMPT, [{"role": "assistant", "content": "Reply."}], template) == render(PROMPT, "Reply.", template)


def test_tokenizer_template_gets_tool_calls_as_a_list():
    seen = []

    class FakeTokenizer:
        chat_template = "set"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            seen.append(messages)
            return json.dumps(messages)[:-1] if add_generation_prompt else json.dumps(messages)

    render(ASK, TOOL_TURNS, template="tokenizer", tokenizer=FakeTokenizer())
    assert seen[-1][1] == {"role": "assistant", "content": "", "tool_calls": CALL}
    assert seen[-1][2] == {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "mul"}


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
CALLS = st.lists(st.fixed_dictionaries({"id": TEXT, "type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": TEXT, "arguments": TEXT})}), min_size=1, max_size=2)
ASSISTANT = st.builds(lambda content, calls: {"role": "assistant", "content": content,
                                              **({"tool_calls": json.dumps(calls)} if calls else {})},
                      TEXT, st.none() | CALLS)
TOOL = st.builds(lambda content, name: {"role": "tool", "content": content, **({"name": name} if name else {})},
                 TEXT, st.none() | TEXT)
PLAIN = st.builds(lambda role, content: {"role": role, "content": content}, st.sampled_from(["system", "user"]), TEXT)
PROMPTS = st.builds(lambda head, last: [*head, {"role": "user", "content": last}],
                    st.lists(PLAIN | ASSISTANT | TOOL, max_size=4), TEXT)
REPLIES = st.none() | TEXT | st.builds(lambda turns, last: [*turns, {"role": "assistant", "content": last}],
                                       st.lists(ASSISTANT | TOOL, max_size=3), TEXT.filter(str.strip))


@settings(max_examples=200, deadline=None)
@given(prompt=PROMPTS, reply=REPLIES, template=st.sampled_from(["dschat", "chatml"]))
def test_the_prompt_alone_is_a_prefix_of_prompt_and_reply(prompt, reply, template):
    assert render(prompt, reply, template).startswith(render(prompt, None, template))
