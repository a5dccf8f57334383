"""Tests that kill mutants of `prefdata/formats/trl.py` the suite let survive (issue #15): the field each refusal
names, the scores and leftover keys (``meta``) each TRL shape keeps, and where an implicit-prompt conversation is cut
when the replies share a tool call or differ in length. Records are written here; expected values follow from them by
hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import CALLING, RESULT, SUNNY, USER, refusal

from prefdata.formats import trl

UNSURE = {"role": "assistant", "content": "No idea."}


@pytest.mark.parametrize("changes, refused", [
    ({"prompt": 5}, ("schema_violation", "prompt", "is a number, not a list of messages")),
    ({"prompt": [5]}, ("schema_violation", "prompt[0]", "is a number, not a message object")),
    ({"chosen": 5}, ("schema_violation", "chosen", "is a number, not a string or message")),
    ({"rejected": 5}, ("schema_violation", "rejected", "is a number, not a string or message")),
])
def test_explicit_refusals_name_the_field(changes, refused):
    record = {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away.", **changes}
    assert refusal(trl.parse_explicit, record, "src") == refused


def test_explicit_keeps_both_scores_and_the_other_keys():
    record = {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away.", "chosen_score": 2.0, "rejected_score": 0.5,
              "lang": "en"}
    row = trl.parse_explicit(record, "src")
    assert (row["source"], row["chosen_score"], row["rejected_score"], row["meta"]) == ("src", 2.0, 0.5, '{"lang":"en"}')


def test_standard_implicit_keeps_only_unread_keys_in_meta():
    record = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
              "chosen_score": 2.0, "rejected_score": 0.5, "lang": "en"}
    row = trl.parse_standard_implicit(record, "src")
    assert (row["source"], row["chosen"], row["rejected"], row["meta"]) == ("src", "Hello.", "Go away.", '{"lang":"en"}')
    assert (row["chosen_score"], row["rejected_score"]) == (2.0, 0.5)


def test_conversational_implicit_keeps_scores_and_unread_keys():
    record = {"chosen": [USER, SUNNY], "rejected": [USER, UNSURE], "chosen_score": 2.0, "rejected_score": 0.5,
              "lang": "en"}
    row = trl.parse_conversational_implicit(record, "src")
    assert (row["source"], row["prompt"], row["chosen"], row["rejected"]) == ("src", [USER], "It is 12C.", "No idea.")
    assert (row["chosen_score"], row["rejected_score"], row["meta"]) == (2.0, 0.5, '{"lang":"en"}')


def test_conversational_implicit_cuts_a_shared_tool_call_back_to_the_last_user_turn():
    row = trl.parse_conversational_implicit({"chosen": [USER, CALLING, RESULT, SUNNY],
                                             "rejected": [USER, CALLING, RESULT, UNSURE]}, "src")
    assert row["prompt"] == [USER]
    assert (row["chosen_turns"], row["rejected_turns"]) == ([CALLING, RESULT, SUNNY], [CALLING, RESULT, UNSURE])


def test_conversational_implicit_replies_of_different_lengths():
    row = trl.parse_conversational_implicit({"chosen": [USER, SUNNY], "rejected": [USER, CALLING, RESULT, UNSURE]},
                                            "src")
    assert (row["prompt"], row["chosen"], row["rejected_turns"]) == ([USER], "It is 12C.", [CALLING, RESULT, UNSURE])


@pytest.mark.parametrize("side", ["chosen", "rejected"])
def test_conversational_implicit_sides_must_be_lists_of_messages(side):
    record = {"chosen": [USER, SUNNY], "rejected": [USER, UNSURE], side: "Hello."}
    assert refusal(trl.parse_conversational_implicit, record, "src") == (
        "schema_violation", side, "is a string, not a list of messages")


def test_prompt_completion_refusal_names_the_completion():
    assert refusal(trl.parse_prompt_completion, {"prompt": "Hi", "completion": 5}, "src") == (
        "schema_violation", "completion", "is a number, not a string or message")


@pytest.mark.parametrize("chosen, rejected, refused", [
    ([USER, SUNNY], [USER, SUNNY], ("identical_pair", "chosen", "no final reply after the shared prompt")),
    ([USER], [USER, SUNNY], ("missing_field", "chosen", "no final reply after the shared prompt")),
    ([USER, SUNNY], [USER], ("missing_field", "rejected", "no final reply after the shared prompt")),
    ([USER, SUNNY], [{"role": "user", "content": "Hi"}, UNSURE],
     ("diverges_before_assistant", "chosen", "the conversations differ before their final assistant message")),
])
def test_conversational_implicit_refusals(chosen, rejected, refused):
    assert refusal(trl.parse_conversational_implicit, {"chosen": chosen, "rejected": rejected}, "src") == refused


def test_prompt_only_completion_and_messages_keep_unread_keys_and_the_source():
    prompt_only = trl.parse_prompt_only({"prompt": "Hi", "lang": "en"}, "src")
    completion = trl.parse_prompt_completion({"prompt": "Hi", "completion": "Hello.", "lang": "en"}, "src")
    chat = trl.parse_messages({"messages": [{"role": "user", "content": "Hi"}], "lang": "en"}, "src")
    for row in (prompt_only, completion, chat):
        assert (row["source"], row["meta"]) == ("src", '{"lang":"en"}')
