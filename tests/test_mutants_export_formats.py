"""Tests that kill mutants of `prefdata/jobs/export_formats.py` the suite let survive (issue #15): each converter on
rows built here, every expected item written out by hand from the row (no files, no export run).

Equivalent survivors (one line each):
- `chatllama_input` calling `render` without ``template="dschat"``: dschat is `render`'s default template.
"""

from __future__ import annotations

import json

import pytest

from prefdata.contract.render import render
from prefdata.contract.row import make_row
from prefdata.jobs import export_formats as ef
from prefdata.jobs.export_formats import Conversion

ASK = [{"role": "user", "content": "Hi?"}]
SYSTEM = [{"role": "system", "content": "Be brief."}, *ASK]
CALL = [{"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a": 2}'}}]
TOOL_TURNS = [{"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "tool", "content": "42"},
              {"role": "assistant", "content": "It is 42."}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_left_out_reasons_are_named_and_explained():
    assert ef.LEFT_OUT == {
        "unpaired": "a labelled reply without a pair (KTO); the format has no shape for it",
        "tool_calls": "a tool call or tool result; the format has no shape for it (TRL: use --container jsonl)",
        "turns": "turns LLaMA-Factory cannot read (not alternating, or a ranked reply of several messages)",
    }
    assert ef.UNPAIRED == "unpaired" and tuple(ef.SKIPPED) == ([], "", None)


def test_has_tool_calls_looks_at_the_prompt_and_both_replies():
    assert not ef.has_tool_calls(make_row(ASK, "Yes.", "No.", source="t"))
    assert ef.has_tool_calls(make_row(ASK, TOOL_TURNS, "No.", source="t"))
    assert ef.has_tool_calls(make_row(ASK, "Yes.", TOOL_TURNS, source="t"))
    tool_prompt = [*ASK, {"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "tool", "content": "4"},
                   {"role": "user", "content": "And?"}]
    assert ef.has_tool_calls(make_row(tool_prompt, "Yes.", "No.", source="t"))
    assert ef.has_tool_calls(make_row(ASK, None, TOOL_TURNS, label=False, source="t"))
    unanswered = [{"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "assistant", "content": "Done."}]
    assert ef.has_tool_calls(make_row(ASK, unanswered, "No.", source="t"))  # a call with no tool message after it


# ----------------------------------------------------------------------------------------------------------- trl


def test_trl_items_per_phase():
    row = make_row(SYSTEM, "Yes.", "No.", source="t")
    assert ef.to_trl(row, "rm") == Conversion([{"prompt": SYSTEM, "chosen": assistant("Yes."),
                                                "rejected": assistant("No.")}])
    assert ef.to_trl(row, "sft") == Conversion([{"prompt": SYSTEM, "completion": assistant("Yes.")}])
    assert ef.to_trl(row, "ppo") == Conversion([{"prompt": SYSTEM}])
    assert ef.to_trl(make_row(ASK, source="t"), "sft") == ef.SKIPPED


def test_trl_unpaired_rows_go_to_the_side_file_with_their_label():
    good, bad = make_row(ASK, "Yes.", label=True, source="t"), make_row(ASK, None, "No.", label=False, source="t")
    assert ef.to_trl(good, "rm") == Conversion([{"prompt": ASK, "completion": assistant("Yes."), "label": True}],
                                               "unpaired")
    assert ef.to_trl(bad, "rm") == Conversion([{"prompt": ASK, "completion": assistant("No."), "label": False}],
                                              "unpaired")
    assert ef.to_trl(good, "sft") == ef.SKIPPED


def test_trl_messages_drop_unset_keys_and_parse_tool_calls():
    row = make_row(ASK, TOOL_TURNS, "No.", source="t")
    completion = ef.to_trl(row, "sft").items[0]["completion"]
    assert completion == [{"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "tool", "content": "42"},
                          {"role": "assistant", "content": "It is 42."}]


# ------------------------------------------------------------------------------------------ dschat and chatllama


def test_dschat_items_per_phase():
    row = make_row(ASK, "Yes.", "No.", source="t")
    prompt = render(ASK, template="dschat")
    assert ef.to_dschat(row, "rm") == Conversion([{"prompt": prompt, "chosen": "Yes.", "rejected": "No."}])
    assert ef.to_dschat(row, "sft") == Conversion([{"prompt": prompt, "chosen": "Yes.", "rejected": None}])
    assert ef.to_dschat(row, "ppo") == Conversion([{"prompt": prompt, "chosen": None, "rejected": None}])


@pytest.mark.parametrize("convert", [ef.to_dschat, ef.to_chatllama])
def test_flat_formats_refuse_unpaired_rows_and_tool_calls_and_skip_what_the_phase_does_not_use(convert):
    unpaired = make_row(ASK, "Yes.", label=True, source="t")
    assert convert(unpaired, "rm") == Conversion([], left_out="unpaired")
    assert convert(unpaired, "sft") == ef.SKIPPED  # serves only ppo
    assert convert(make_row(ASK, TOOL_TURNS, "No.", source="t"), "rm") == Conversion([], left_out="tool_calls")
    assert convert(make_row(ASK, source="t"), "rm") == ef.SKIPPED


def test_a_continuation_is_the_text_after_the_prompt_in_the_dschat_rendering():
    turns = [{"role": "assistant", "content": "Let me see."}, {"role": "assistant", "content": "Yes."}]
    row = make_row(ASK, turns, "No.", source="t")
    head = render(ASK, template="dschat")
    expected = render(ASK, turns, template="dschat")[len(head) + 1:]
    assert ef.to_dschat(row, "rm").items[0]["chosen"] == expected
    assert expected.startswith("Let me see.") and expected.endswith("Yes.")


@pytest.mark.parametrize(("chosen", "rejected", "expected"), [
    (None, 1.0, (1.0, -1.0)), (3.0, None, (1.0, -1.0)),  # unscored
    (2.0, 2.0, (1.0, -1.0)), (1.0, 4.0, (1.0, -1.0)),  # scores that contradict the pair
    (8.5, 2.25, (8.5, 2.25)), (1.0, -1.0, (1.0, -1.0)),  # kept: nothing falsy
    (3.0, 0.0, (4.0, 1.0)), (0.0, -2.0, (1.0, -1.0)),  # a 0 shifts both up by 1 ...
    (0.0, -1.0, (2.0, 1.0)), (1.0, 0.0, (2.0, 1.0)), (-1.0, -3.0, (-1.0, -3.0)),  # ... by 2 when -1 would become 0
])
def test_chatllama_scores_by_hand(chosen, rejected, expected):
    row = make_row(ASK, "Yes.", "No.", source="t", chosen_score=chosen, rejected_score=rejected)
    assert ef.chatllama_scores(row) == expected


def test_chatllama_items_per_phase():
    row = make_row(ASK, "Yes.", "No.", source="t", chosen_score=3.0, rejected_score=0.0)
    user_input = "Human: Hi?\n\n##\n\n"
    assert ef.chatllama_input(ASK) == user_input
    assert ef.to_chatllama(row, "sft") == Conversion([{"user_input": user_input, "completion": "Assistant: Yes."}])
    assert ef.to_chatllama(row, "rm") == Conversion([
        {"user_input": user_input, "completion": "Assistant: Yes.", "score": 4.0},
        {"user_input": user_input, "completion": "Assistant: No.", "score": 1.0}])
    assert ef.to_chatllama(row, "ppo") == Conversion([{"user_input": user_input}])


# ------------------------------------------------------------------------------------------------------ sharegpt


def test_sharegpt_items_per_phase_with_the_system_prompt_apart():
    row = make_row(SYSTEM, "Yes.", "No.", source="t")
    asked = [{"from": "human", "value": "Hi?"}]
    assert ef.to_sharegpt(row, "rm") == Conversion([{"conversations": asked, "system": "Be brief.",
                                                     "chosen": {"from": "gpt", "value": "Yes."},
                                                     "rejected": {"from": "gpt", "value": "No."}}])
    assert ef.to_sharegpt(row, "sft") == Conversion([{"conversations": [*asked, {"from": "gpt", "value": "Yes."}],
                                                      "system": "Be brief."}])
    assert ef.to_sharegpt(row, "ppo") == Conversion([{"conversations": [*asked, {"from": "gpt", "value": ""}],
                                                      "system": "Be brief."}])
    no_system = ef.to_sharegpt(make_row(ASK, "Yes.", source="t"), "sft")
    assert no_system.items[0]["system"] == "" and ef.to_sharegpt(make_row(ASK, source="t"), "sft") == ef.SKIPPED


def test_sharegpt_unpaired_rows_carry_kto_tag_in_the_side_file():
    bad = make_row(ASK, None, "No.", label=False, source="t")
    assert ef.to_sharegpt(bad, "rm") == Conversion([{"conversations": [{"from": "human", "value": "Hi?"},
                                                                       {"from": "gpt", "value": "No."}],
                                                     "system": "", "kto_tag": False}], "unpaired")
    assert ef.to_sharegpt(make_row(ASK, "Yes.", label=True, source="t"), "rm").items[0]["kto_tag"] is True
    assert ef.to_sharegpt(bad, "sft") == ef.SKIPPED


def test_sharegpt_tool_calls_become_function_call_and_observation_turns():
    item = ef.to_sharegpt(make_row(ASK, TOOL_TURNS, "No.", source="t"), "sft").items[0]
    assert item["conversations"] == [{"from": "human", "value": "Hi?"},
                                     {"from": "function_call", "value": '{"name": "mul", "arguments": {"a": 2}}'},
                                     {"from": "observation", "value": "42"}, {"from": "gpt", "value": "It is 42."}]


def test_function_call_arguments_and_parallel_calls():
    text = [{"function": {"name": "f", "arguments": "not json"}}]
    assert ef._function_call(json.dumps(text)) == {"from": "function_call",
                                                   "value": '{"name": "f", "arguments": "not json"}'}
    parallel = [{"function": {"name": "f", "arguments": {"x": "é"}}}, {"function": {"name": "g", "arguments": "[1]"}}]
    assert json.loads(ef._function_call(json.dumps(parallel))["value"]) == [{"name": "f", "arguments": {"x": "é"}},
                                                                          {"name": "g", "arguments": [1]}]
    assert "é" in ef._function_call(json.dumps(parallel))["value"]  # not escaped


def test_sharegpt_leaves_out_turns_llama_factory_cannot_read():
    spoken_call = [{"role": "assistant", "content": "Calling.", "tool_calls": CALL}, {"role": "tool", "content": "4"},
                   {"role": "assistant", "content": "Four."}]
    assert ef.to_sharegpt(make_row(ASK, spoken_call, "No.", source="t"), "sft") == Conversion([], left_out="turns")
    two_users = [*ASK, {"role": "user", "content": "Hello?"}]
    assert ef.to_sharegpt(make_row(two_users, "Yes.", source="t"), "sft") == Conversion([], left_out="turns")
    assert ef.to_sharegpt(make_row(two_users, source="t"), "ppo") == Conversion([], left_out="turns")
    # a ranked reply of several messages cannot be one chosen message
    assert ef.to_sharegpt(make_row(ASK, TOOL_TURNS, "No.", source="t"), "rm") == Conversion([], left_out="turns")


def test_alternates_is_llama_factorys_rule():
    def turns(*names: str) -> list[dict[str, str]]:
        return [{"from": name, "value": ""} for name in names]

    assert ef._alternates(turns("human", "gpt", "observation", "function_call"))
    assert not ef._alternates(turns("gpt"))
    assert not ef._alternates(turns("human", "human"))
    assert ef._alternates([])


def test_canonical_is_the_row_as_stored_for_every_phase():
    row = make_row(ASK, "Yes.", "No.", source="t")
    for phase in ("rm", "sft", "ppo"):
        converted = ef.canonical(row, phase)
        assert converted == Conversion([row]) and converted.items[0] is not row
    by_name = {"trl": ef.to_trl, "dschat": ef.to_dschat, "chatllama": ef.to_chatllama, "sharegpt": ef.to_sharegpt,
               "jsonl": ef.canonical, "parquet": ef.canonical}
    assert by_name == ef.CONVERTERS
