"""The row contract's refusals and ids, pinned where mutation testing (scripts/mutation.sh) found them unchecked.

Every refusal is checked whole: reason code, field and message (types named as JSON names them), since all three
reach `quarantine.jsonl` and the user. Ids are recomputed here from the contract's definition (sha256 of the canonical JSON), including the inputs
that take the generic encoding path (control characters) and rows without replies (``null``).
"""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import make_row, make_row_from_turns, make_unsup_row, prompt_group, row_id

Q = [{"role": "user", "content": "Name a tree."}]


def sha16(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def refusal(call) -> tuple[str, str | None, str]:
    with pytest.raises(RowError) as caught:
        call()
    return caught.value.reason, caught.value.field, caught.value.message


EMPTY_USERS = [{"role": "user", "content": " \n"}, {"role": "assistant", "content": "Hello."},
               {"role": "user", "content": ""}]

# (prompt, chosen, rejected, scores) -> (reason, field, message), written out by hand from the contract.
MAKE_ROW_REFUSALS = [
    ([], "a", "b", {}, ("empty_prompt", "prompt", "the prompt has no messages")),
    ((), "a", "b", {}, ("empty_prompt", "prompt", "the prompt has no messages")),  # any sequence, read as a list
    ("q", "a", "b", {}, ("schema_violation", "prompt[0]", "message 0 is a string, not an object")),
    ([*Q, "hi"], "a", "b", {}, ("schema_violation", "prompt[1]", "message 1 is a string, not an object")),
    ([*Q, ["user", "hi"]], "a", "b", {}, ("schema_violation", "prompt[1]", "message 1 is a list, not an object")),
    ([{"role": "bot", "content": "hi"}], "a", "b", {},
     ("bad_role", "prompt[0].role", "role 'bot' is not one of system, user, assistant, tool")),
    ([{"role": "user", "content": 7}], "a", "b", {},
     ("schema_violation", "prompt[0].content", "content is a number, not a string")),
    ([*Q, {"role": "assistant", "content": "Oak."}], "a", "b", {},
     ("prompt_not_ending_with_user", "prompt", "the prompt must end with a user message")),
    (EMPTY_USERS, "a", "b", {}, ("empty_prompt", "prompt", "every user message in the prompt is empty")),
    (Q, 3, "b", {}, ("schema_violation", "chosen", "is a number, not a string or a list of messages")),
    (Q, "a", ["b"], {}, ("schema_violation", "rejected[0]", "message 0 is a string, not an object")),
    (Q, "  ", "b", {}, ("empty_reply", "chosen", "the reply is empty")),
    (Q, "a", "", {}, ("empty_reply", "rejected", "the reply is empty")),
    (Q, None, "b", {}, ("missing_field", "chosen", "a rejected reply needs a chosen reply")),
    (Q, "same", "same", {}, ("identical_pair", "rejected", "chosen and rejected are identical")),
    (Q, "a", "b", {"chosen_score": "high"}, ("schema_violation", "chosen_score", "is a string, not a number")),
    (Q, "a", "b", {"rejected_score": True}, ("schema_violation", "rejected_score", "is a boolean, not a number")),
    (Q, "a", "b", {"rejected_score": float("-inf")}, ("schema_violation", "rejected_score", "is not a finite number")),
    (Q, "a", "b", {"chosen_score": float("inf")}, ("schema_violation", "chosen_score", "is not a finite number")),
    (Q, "a", "b", {"chosen_score": float("nan")}, ("schema_violation", "chosen_score", "is not a finite number")),
]


@pytest.mark.parametrize(("prompt", "chosen", "rejected", "scores", "expected"), MAKE_ROW_REFUSALS)
def test_make_row_refusals_name_reason_field_and_message(prompt, chosen, rejected, scores, expected):
    assert refusal(lambda: make_row(prompt, chosen, rejected, source="t", **scores)) == expected


# The same refusals for a prompt a parser split into roles and contents itself.
TURNS_REFUSALS = [
    ([], [], "a", "b", ("empty_prompt", "prompt", "the prompt has no messages")),
    (["user", "assistant"], ["q", "a"], "a", "b",
     ("prompt_not_ending_with_user", "prompt", "the prompt must end with a user message")),
    (["user", "assistant", "user"], [" \n", "Hello.", ""], "a", "b",
     ("empty_prompt", "prompt", "every user message in the prompt is empty")),
    (["user"], ["q"], "\t", "b", ("empty_reply", "chosen", "the reply is empty")),
    (["user"], ["q"], "a", "  ", ("empty_reply", "rejected", "the reply is empty")),
    (["user"], ["q"], "a", "", ("empty_reply", "rejected", "the reply is empty")),
    (["user"], ["q"], "same", "same", ("identical_pair", "rejected", "chosen and rejected are identical")),
]


@pytest.mark.parametrize(("roles", "contents", "chosen", "rejected", "expected"), TURNS_REFUSALS)
def test_rows_from_turns_refuse_like_make_row(roles, contents, chosen, rejected, expected):
    assert refusal(lambda: make_row_from_turns(roles, contents, chosen, rejected, source="t")) == expected


def test_row_from_turns_is_the_whole_row():
    roles, contents = ["system", "user", "assistant", "user"], ["Be kind.", "Hi.", "Hello!", "Name a tree."]
    prompt = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    row = make_row_from_turns(roles, contents, "Oak.", "Rock.", source="custom/t")
    assert row == {"id": sha16([prompt, "Oak.", "Rock."]), "source": "custom/t", "group": sha16(prompt),
                   "prompt": prompt, "chosen": "Oak.", "rejected": "Rock.", "chosen_score": None,
                   "rejected_score": None, "meta": "{}", "chosen_turns": None, "rejected_turns": None, "label": None}


def test_unsup_refusals_and_id():
    assert refusal(lambda: make_unsup_row(42, source="t")) == ("schema_violation", "text", "is a number, not a string")
    assert refusal(lambda: make_unsup_row(" \n", source="t")) == ("empty_text", "text", "the text is empty")
    assert make_unsup_row("Once upon a time.", source="t")["id"] == sha16(["unsup", "Once upon a time."])


@pytest.mark.parametrize("text", [
    "plain words",
    'quotes " and back\\slashes, a\nnewline',
    "a tab\there and a bell \x07",  # control characters other than newline take the generic path
    "ünïcödé 问题 🙂",
])
def test_ids_are_the_canonical_sha256_for_every_kind_of_text(text):
    prompt = [{"role": "system", "content": text}, {"role": "user", "content": f"{text}?"}]
    for chosen, rejected in [(f"{text}!", f"{text}."), (f"{text}!", None), (None, None)]:
        row = make_row(prompt, chosen, rejected, source="t")
        assert row["id"] == sha16([prompt, chosen, rejected]) == row_id(prompt, chosen, rejected)
        assert row["group"] == sha16(prompt) == prompt_group(prompt)


def test_a_read_only_mapping_is_a_message():
    prompt = [MappingProxyType({"role": "user", "content": "Name a tree."})]
    assert make_row(prompt, "Oak.", source="t")["prompt"] == Q


@pytest.mark.parametrize("build", [
    lambda: make_row([{"role": "user", "content": "a\ud800b"}], "Oak.", source="t"),
    lambda: make_row(Q, "Oak.", meta={"note": "\ud800"}, source="t"),
    lambda: make_unsup_row("text \ud800", source="t"),
])
def test_a_lone_surrogate_is_refused_naming_the_character(build):
    assert refusal(build) == ("bad_unicode", None, "contains an unpaired surrogate ('\\ud800'), which is not valid text")
