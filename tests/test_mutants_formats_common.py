"""Tests that kill mutants of `prefdata/formats/common.py` the suite let survive (issue #15): each helper's refusal
(reason, field and message), CSV ``true``/``false`` cells, tool and function calls in both spellings, tool results'
id and name, an empty call list, and where a conversation splits into prompt and reply. Records are written here;
expected values follow from them by hand.

Equivalent survivors (of a run over every mutant, not only the sample of 80; one line each):
- `Format.cells_from_text` returning ``{**record, **converted}`` also when nothing converted: an equal copy, and no
  parser mutates or compares its record by identity.
- `split_conversation` with ``default=-2`` for "no user turn": any negative default takes the same ``last_user < 0``
  branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from prefdata.contract.errors import RowError
from prefdata.formats import common

CALL = {"name": "lookup", "arguments": '{"city":"Oslo"}'}
# `CALL` as a row keeps it: OpenAI tool_calls, canonical JSON (sorted keys, no spaces).
CALL_AS_TOOL_CALLS = '[{"function":{"arguments":"{\\"city\\":\\"Oslo\\"}","name":"lookup"},"type":"function"}]'


def refusal(parse: Callable[..., Any], *args: Any) -> tuple[str, str | None, str]:
    """``(reason, field, message)`` of the `RowError` that ``parse(*args)`` raises."""
    with pytest.raises(RowError) as error:
        parse(*args)
    return error.value.reason, error.value.field, error.value.message


@pytest.mark.parametrize("cell, value", [(" True ", True), ("FALSE", False), ("yes", "yes"), (1, 1)])
def test_bool_from_text_reads_true_and_false_in_any_case(cell, value):
    assert common.bool_from_text(cell) is value


DEEP = "[" * 101 + "]" * 101  # one level deeper than prefdata.contract.nesting.MAX_DEPTH


@pytest.mark.parametrize("parse", [common.maybe_json, common.tool_calls, common.function_calls, common.messages,
                                   common.reply])
def test_json_text_too_deep_names_the_field(parse):
    assert refusal(parse, DEEP, "meta") == ("too_deep", "meta", "JSON text nested deeper than 100 levels")


def test_json_text_may_start_with_white_space():
    assert common.maybe_json(' [{"a": 1}]') == [{"a": 1}]


@pytest.mark.parametrize("value, listy", [(" " + DEEP, True), ("{" * 101 + "}" * 101, False)])
def test_text_too_deep_to_decode_is_listy_when_it_opens_a_list(value, listy):
    assert common.is_listy(value) is listy


@pytest.mark.parametrize("record, message", [({}, "required key is missing"),
                                             ({"k": None}, "required value is empty (null)")])
def test_require_refusals(record, message):
    assert refusal(common.require, record, "k") == ("missing_field", "k", message)


def test_a_role_that_is_not_a_string_is_a_bad_role():
    assert refusal(common.role_of, 5, "m.role") == (
        "bad_role", "m.role", "role 5 is not user/human, assistant/gpt, system, tool/observation or function_call")


def test_optional_text_names_the_field_of_a_non_string():
    assert refusal(common.optional_text, {"system": 3}, "system") == (
        "schema_violation", "system", "is a number, not a string")


@pytest.mark.parametrize("value", [[1], ["call"], {"id": "c1"}])
def test_tool_calls_must_be_a_list_of_objects(value):
    assert refusal(common.tool_calls, value, "m.tool_calls") == (
        "bad_tool_call", "m.tool_calls", f"is a {'list' if isinstance(value, list) else 'object'}, not a list of tool "
                                         "call objects")


def test_an_empty_tool_call_list_is_no_call():
    assert common.tool_calls([], "m.tool_calls") is None
    assert common.tool_calls("[]", "m.tool_calls") is None


@pytest.mark.parametrize("value", [CALL, [CALL], '{"name": "lookup", "arguments": "{\\"city\\":\\"Oslo\\"}"}'])
def test_function_calls_become_openai_tool_calls(value):
    assert common.function_calls(value, "m.value") == CALL_AS_TOOL_CALLS


@pytest.mark.parametrize("value", ["[]", [{"arguments": "{}"}], "lookup"])
def test_function_calls_refusal_names_the_field(value):
    assert refusal(common.function_calls, value, "m.value") == (
        "bad_tool_call", "m.value", "is not a function call {name, arguments} (or a list of them) as JSON")


@pytest.mark.parametrize("value, refused", [
    ("hi", ("schema_violation", "prompt[0]", "is a string, not a message object")),
    ({"content": "hi"}, ("missing_field", "prompt[0].role", "required key is missing")),
    ({"value": "hi"}, ("missing_field", "prompt[0].from", "required key is missing")),
    ({"text": "hi"}, ("schema_violation", "prompt[0]", "a message needs role/content or from/value")),
    ({"role": "user"}, ("missing_field", "prompt[0].content", "required key is missing")),
    ({"role": "user", "content": 5}, ("schema_violation", "prompt[0].content", "is a number, not a string")),
    ({"from": "human"}, ("missing_field", "prompt[0].value", "required key is missing")),
    ({"role": "user", "tool_calls": [{"id": "c1"}]}, ("missing_field", "prompt[0].content", "required key is missing")),
    ({"role": "assistant", "content": None}, ("missing_field", "prompt[0].content", "required key is missing")),
    ({"role": "assistant", "content": "", "function_call": "lookup"},
     ("bad_tool_call", "prompt[0].function_call",
      "is not a function call {name, arguments} (or a list of them) as JSON")),
    ({"role": "tool", "content": "12C", "tool_call_id": 5},
     ("schema_violation", "prompt[0].tool_call_id", "is a number, not a string")),
])
def test_message_refusals(value, refused):
    assert refusal(common.message, value, "prompt[0]") == refused


def test_function_call_turn_is_an_assistant_message_calling_the_tool():
    turn = {"from": "function_call", "value": '{"name": "lookup", "arguments": "{\\"city\\":\\"Oslo\\"}"}'}
    assert common.message(turn, "m") == {"role": "assistant", "content": "", "tool_calls": CALL_AS_TOOL_CALLS}


@pytest.mark.parametrize("calls", [{"tool_calls": [{"type": "function", "function": CALL}]}, {"function_call": CALL}])
@pytest.mark.parametrize("content", [{}, {"content": None}, {"content": ""}])
def test_assistant_message_that_only_calls_a_tool(calls, content):
    assert common.message({"role": "assistant", **content, **calls}, "m") == {
        "role": "assistant", "content": "", "tool_calls": CALL_AS_TOOL_CALLS}


def test_tool_result_keeps_its_call_id_and_name_and_other_roles_do_not():
    result = {"role": "tool", "content": "12C", "tool_call_id": "c1", "name": "lookup"}
    assert common.message(result, "m") == result
    assert common.message({"role": "user", "content": "hi", "tool_call_id": "c1", "name": "ann"}, "m") == {
        "role": "user", "content": "hi"}


def test_messages_and_reply_refusals_name_the_field():
    assert refusal(common.messages, "hi", "prompt") == ("schema_violation", "prompt", "is a string, not a list of messages")
    assert refusal(common.reply, 5, "chosen") == ("schema_violation", "chosen", "is a number, not a string or message")
    assert refusal(common.reply, {"from": "gpt"}, "chosen") == ("missing_field", "chosen.value", "required key is missing")
    assert refusal(common.reply, [5], "chosen") == ("schema_violation", "chosen[0]", "is a number, not a message object")


@pytest.mark.parametrize("key", ["label", "kto_tag"])
def test_a_label_that_is_not_a_boolean_is_refused(key):
    assert refusal(common.label, {key: "yes"}) == ("bad_label", key, "is a string, not true or false")


USER = {"role": "user", "content": "Weather in Oslo?"}
CALLING = {"role": "assistant", "content": "", "tool_calls": CALL_AS_TOOL_CALLS}
RESULT = {"role": "tool", "content": "12C", "tool_call_id": "c1"}
SUNNY = {"role": "assistant", "content": "It is 12C."}


def test_a_conversation_ending_with_a_tool_result_has_no_reply():
    conversation = [USER, CALLING, RESULT]
    assert common.split_conversation(conversation) == (conversation, None)


@pytest.mark.parametrize("ending", [("assistant",), ("tool",), ("user",)])
def test_a_conversation_ending_with_its_last_user_turn_has_no_reply(ending):
    conversation = [{"role": "system", "content": "Be brief."}, USER]
    assert common.split_conversation(conversation, ending) == (conversation, None)


def test_a_conversation_without_a_user_turn_has_no_reply():
    conversation = [{"role": "system", "content": "Be brief."}, SUNNY, SUNNY]
    assert common.split_conversation(conversation) == (conversation, None)


def test_pair_row_starts_both_replies_with_the_shared_tool_call():
    row = common.pair_row([USER, CALLING, RESULT], "It is 12C.", "No idea.", "src")
    assert (row["source"], row["prompt"]) == ("src", [USER])
    assert row["chosen_turns"] == [CALLING, RESULT, {"role": "assistant", "content": "It is 12C."}]
    assert row["rejected_turns"] == [CALLING, RESULT, {"role": "assistant", "content": "No idea."}]


@pytest.mark.parametrize("verdict, chosen, rejected", [(True, "Hello.", None), (False, None, "Hello."),
                                                       (None, "Hello.", None)])
def test_conversation_row_with_a_label_is_unpaired(verdict, chosen, rejected):
    record = {"lang": "en"} if verdict is None else {"label": verdict, "lang": "en"}
    row = common.conversation_row([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
                                  record, "src", {"messages"})
    assert (row["source"], row["chosen"], row["rejected"], row["label"]) == ("src", chosen, rejected, verdict)
    assert row["meta"] == '{"lang":"en"}'
