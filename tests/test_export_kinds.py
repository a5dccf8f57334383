"""Issue #11 item 7, export side: the row kinds of `prefdata.preference/2` (unpaired labelled replies, continuations of
several messages, tool calls) in every export format. A format that has a shape for a kind writes it; one that has
none leaves the row out with a reason, never a row that means something else (an undesirable reply as a
demonstration, a dropped turn)."""

from __future__ import annotations

import json

import pytest

from prefdata.jobs.export_formats import CONVERTERS, LEFT_OUT, UNPAIRED, Conversion

PROMPT = [{"role": "user", "content": "What is the weather in Paris?"}]
CALLS = [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]
# A continuation with a tool call and its result (spec_v2: tool_calls is canonical JSON text on the assistant message).
TOOL_TURNS = [{"role": "assistant", "content": "", "tool_calls": json.dumps(CALLS, separators=(",", ":"))},
              {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1", "name": "weather"},
              {"role": "assistant", "content": "It is 18 C and sunny."}]


def v2_row(**fields) -> dict:
    """A row as `prefdata.preference/2` stores it (the new columns None unless set)."""
    row = {"id": "x", "source": "custom/t", "group": "g", "prompt": PROMPT, "chosen": None, "rejected": None,
           "chosen_score": None, "rejected_score": None, "meta": None, "chosen_turns": None, "rejected_turns": None,
           "label": None}
    return {**row, **fields}


UNDESIRABLE = v2_row(rejected="Look it up yourself.", label=False)
DESIRABLE = v2_row(chosen="It is 18 C and sunny.", label=True)
TOOL_PAIR = v2_row(chosen_turns=TOOL_TURNS, rejected="I cannot know that.")
TWO_MESSAGES = [{"role": "assistant", "content": "Let me think."}, {"role": "assistant", "content": "Sunny."}]


@pytest.mark.parametrize("format", ["trl", "dschat", "chatllama", "sharegpt"])
def test_an_unpaired_reply_never_becomes_a_demonstration(format):
    for row in (UNDESIRABLE, DESIRABLE):
        assert CONVERTERS[format](row, "sft") == Conversion([])


def test_trl_writes_unpaired_rows_in_its_unpaired_preference_format():
    assert CONVERTERS["trl"](UNDESIRABLE, "rm") == Conversion([{
        "prompt": PROMPT, "completion": [{"role": "assistant", "content": "Look it up yourself."}], "label": False}],
        UNPAIRED)
    assert CONVERTERS["trl"](DESIRABLE, "rm").items[0]["label"] is True


def test_sharegpt_writes_unpaired_rows_with_kto_tag():
    assert CONVERTERS["sharegpt"](UNDESIRABLE, "rm") == Conversion([{
        "conversations": [{"from": "human", "value": PROMPT[0]["content"]},
                          {"from": "gpt", "value": "Look it up yourself."}],
        "system": "", "kto_tag": False}], UNPAIRED)


@pytest.mark.parametrize("format", ["dschat", "chatllama"])
def test_flat_text_formats_leave_out_unpaired_rows_and_tool_calls_with_a_reason(format):
    assert CONVERTERS[format](UNDESIRABLE, "rm") == Conversion([], left_out="unpaired")
    assert CONVERTERS[format](TOOL_PAIR, "rm") == Conversion([], left_out="tool_calls")
    assert CONVERTERS[format](TOOL_PAIR, "sft") == Conversion([], left_out="tool_calls")
    assert set(LEFT_OUT) >= {"unpaired", "tool_calls"}


def test_trl_keeps_tool_calls_as_chat_templates_read_them():
    [item] = CONVERTERS["trl"](TOOL_PAIR, "rm").items
    assert item["chosen"] == [{"role": "assistant", "content": "", "tool_calls": CALLS},
                              TOOL_TURNS[1], TOOL_TURNS[2]]
    assert item["rejected"] == [{"role": "assistant", "content": "I cannot know that."}]


def test_sharegpt_writes_a_tool_call_as_function_call_and_observation():
    [item] = CONVERTERS["sharegpt"](TOOL_PAIR, "sft").items
    assert item["conversations"][1:] == [
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": "18 C, sunny"}, {"from": "gpt", "value": "It is 18 C and sunny."}]
    # ranking needs one message per reply: a continuation of several is left out, not cut to its last message
    assert CONVERTERS["sharegpt"](TOOL_PAIR, "rm") == Conversion([], left_out="turns")


def test_a_continuation_of_several_messages_is_kept_or_left_out_never_cut():
    row = v2_row(chosen_turns=TWO_MESSAGES, rejected="Rainy.")
    [trl] = CONVERTERS["trl"](row, "rm").items
    assert trl["chosen"] == TWO_MESSAGES
    # two gpt turns in a row break LLaMA-Factory's alternation: left out
    assert CONVERTERS["sharegpt"](row, "sft") == Conversion([], left_out="turns")
