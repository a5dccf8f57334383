"""The row contract `prefdata.preference/2` (tools/spec_v2.md): continuations, tool calls, unpaired labelled replies.

Every expected id is recomputed here from the spec's definition (sha256 of the canonical JSON of the prompt, the two
replies and, when set, the label), or is the id 0.2.0 (/1) gave the same content, written out as it printed it.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import (
    PREFERENCE_SCHEMA,
    check_turns_pair,
    has_reply,
    make_row,
    make_row_from_turns,
    prompt_group,
    reply_messages,
    row_id,
    row_kind,
    stored_row_id,
)
from prefdata.contract.rules import REASONS, stored_row_errors

Q = [{"role": "user", "content": "What is 6 x 7?"}]
CALL = [{"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a":6,"b":7}'}}]
CALL_JSON = '[{"function":{"arguments":"{\\"a\\":6,\\"b\\":7}","name":"mul"},"id":"c1","type":"function"}]'
TOOL_TURNS = [{"role": "assistant", "content": "", "tool_calls": CALL},
              {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "mul"},
              {"role": "assistant", "content": "It is 42."}]
STORED_TURNS = [{"role": "assistant", "content": "", "tool_calls": CALL_JSON},
                {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "mul"},
                {"role": "assistant", "content": "It is 42."}]


def sha16(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def refusal(call) -> tuple[str, str | None]:
    with pytest.raises(RowError) as caught:
        call()
    return caught.value.reason, caught.value.field


# (prompt, chosen, rejected) -> (id, group) as prefdata 0.2.0 (`prefdata.preference/1`) made them.
V1_IDS = [
    ([{"role": "user", "content": "Is the sea salty?"}], "Yes.", "No.", "3947f6f63358f19d", "27fa8151a803e970"),
    ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi."},
      {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": 'Name a tree "oak"\n?'}], "Oak 🌳.", None,
     "60bf63bbcc9ba572", "ee92ee04964d887c"),
    ([{"role": "user", "content": "问题\ttab"}], None, None, "5823c06c60ff0e20", "78bf251f347b4efa"),
]


@pytest.mark.parametrize(("prompt", "chosen", "rejected", "v1_id", "v1_group"), V1_IDS)
def test_a_row_v1_could_hold_keeps_its_v1_id_on_every_path(prompt, chosen, rejected, v1_id, v1_group):
    row = make_row(prompt, chosen, rejected, source="s")
    assert (row["id"], row["group"]) == (v1_id, v1_group)
    assert row["id"] == sha16([prompt, chosen, rejected]) == row_id(prompt, chosen, rejected) == stored_row_id(row)
    assert row["group"] == sha16(prompt) == prompt_group(prompt)
    as_messages = [None if r is None else [{"role": "assistant", "content": r}] for r in (chosen, rejected)]
    assert make_row(prompt, *as_messages, source="s") == row  # one plain assistant message is the text form
    if chosen is not None and rejected is not None:  # the HH fast path (download / import of HH transcripts)
        roles, contents = [m["role"] for m in prompt], [m["content"] for m in prompt]
        assert check_turns_pair(roles, contents, chosen, rejected) == (v1_id, v1_group)
        assert make_row_from_turns(roles, contents, chosen, rejected, source="s") == row


def test_the_row_has_the_v2_columns_in_order_and_v1_rows_leave_them_null():
    row = make_row(Q, "42.", "41.", source="s")
    assert list(row) == PREFERENCE_SCHEMA.names == [
        "id", "source", "group", "prompt", "chosen", "rejected", "chosen_score", "rejected_score", "meta",
        "chosen_turns", "rejected_turns", "label"]
    assert (row["chosen_turns"], row["rejected_turns"], row["label"]) == (None, None, None)
    assert row["prompt"] == Q and list(row["prompt"][0]) == ["role", "content"]  # no null extra keys


def test_a_continuation_with_tool_calls_is_kept_as_turns_with_canonical_tool_calls():
    row = make_row(Q, TOOL_TURNS, "41.", source="s")
    assert row["chosen"] is None and row["chosen_turns"] == STORED_TURNS
    assert row["rejected"] == "41." and row["rejected_turns"] is None
    assert json.loads(row["chosen_turns"][0]["tool_calls"]) == CALL
    assert row["id"] == sha16([Q, STORED_TURNS, "41."]) == stored_row_id(row)
    assert row_kind(row) == "pair" and has_reply(row, "chosen") and reply_messages(row, "chosen") == STORED_TURNS
    assert reply_messages(row, "rejected") == [{"role": "assistant", "content": "41."}]
    # tool_calls given as JSON text, keys in another order, nulls for unset fields: the same row
    spelled = [{"content": "", "role": "assistant", "tool_calls": json.dumps(CALL), "name": None},
               {**TOOL_TURNS[1], "tool_calls": None}, {**TOOL_TURNS[2], "tool_call_id": None}]
    assert make_row(Q, spelled, "41.", source="s") == row


def test_several_plain_messages_and_tool_messages_in_the_prompt():
    prompt = [{"role": "user", "content": "Multiply."}, {"role": "assistant", "content": "", "tool_calls": CALL},
              {"role": "tool", "content": "42", "tool_call_id": "c1"}, {"role": "user", "content": "And so?"}]
    turns = [{"role": "assistant", "content": "Let me think."}, {"role": "assistant", "content": "42."}]
    row = make_row(prompt, turns, source="s")
    stored_prompt = [prompt[0], {**prompt[1], "tool_calls": CALL_JSON}, prompt[2], prompt[3]]
    assert row["prompt"] == stored_prompt and row["chosen_turns"] == turns
    assert row["id"] == sha16([stored_prompt, turns, None]) and row["group"] == sha16(stored_prompt)
    assert row_kind(row) == "demonstration"


@pytest.mark.parametrize(("label", "chosen", "rejected"), [(True, "Glad to help.", None), (False, None, "Go away.")])
def test_an_unpaired_row_holds_its_reply_on_the_side_its_label_names(label, chosen, rejected):
    row = make_row(Q, chosen, rejected, label=label, source="s", chosen_score=1.5 if label else None)
    assert row["label"] is label and row_kind(row) == "unpaired"
    assert row["id"] == sha16([Q, chosen, rejected, label]) == stored_row_id(row)
    assert row["id"] != make_row(Q, chosen or rejected, source="s")["id"]  # labelled is not a demonstration
    assert has_reply(row, "chosen") is label and has_reply(row, "rejected") is not label
    turns = make_row(Q, TOOL_TURNS if label else None, None if label else TOOL_TURNS, label=label, source="s")
    assert row_kind(turns) == "unpaired" and turns["id"] == sha16([Q, *(
        [STORED_TURNS, None] if label else [None, STORED_TURNS]), label])


REFUSALS = [
    (lambda: make_row(Q, [], source="s"), ("bad_continuation", "chosen")),
    (lambda: make_row(Q, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], source="s"),
     ("bad_continuation", "chosen[0].role")),
    (lambda: make_row(Q, TOOL_TURNS[:2], source="s"), ("bad_continuation", "chosen")),
    (lambda: make_row(Q, [TOOL_TURNS[0], {"role": "assistant", "content": " "}], source="s"),
     ("bad_continuation", "chosen")),
    (lambda: make_row(Q, "a", [{"role": "assistant", "content": ""}], source="s"), ("empty_reply", "rejected")),
    (lambda: make_row(Q, "a", {"role": "assistant"}, source="s"), ("schema_violation", "rejected")),
    (lambda: make_row(Q, "a", "b", label=True, source="s"), ("bad_label", "label")),
    (lambda: make_row(Q, None, "b", label=True, source="s"), ("bad_label", "chosen")),
    (lambda: make_row(Q, "a", None, label=False, source="s"), ("bad_label", "rejected")),
    (lambda: make_row(Q, label=True, source="s"), ("bad_label", "chosen")),
    (lambda: make_row(Q, "a", label=1, source="s"), ("bad_label", "label")),
    (lambda: make_row(Q, [{"role": "assistant", "content": "x", "tool_calls": "{not json"}], source="s"),
     ("bad_tool_call", "chosen[0].tool_calls")),
    (lambda: make_row(Q, [{"role": "assistant", "content": "x", "tool_calls": {"id": "c1"}}], source="s"),
     ("bad_tool_call", "chosen[0].tool_calls")),
    (lambda: make_row(Q, [{"role": "assistant", "content": "x", "tool_calls": ["c1"]}], source="s"),
     ("bad_tool_call", "chosen[0].tool_calls")),
    (lambda: make_row([{"role": "user", "content": "q", "tool_calls": CALL}], "a", source="s"),
     ("bad_tool_call", "prompt[0].tool_calls")),
    (lambda: make_row(Q, [{"role": "assistant", "content": "x", "tool_call_id": "c1"}], source="s"),
     ("bad_tool_call", "chosen[0].tool_call_id")),
    (lambda: make_row([{"role": "user", "content": "q", "name": "ann"}], "a", source="s"),
     ("bad_tool_call", "prompt[0].name")),
    (lambda: make_row(Q, [TOOL_TURNS[0], {"role": "tool", "content": "42", "tool_call_id": 7}, TOOL_TURNS[2]],
                      source="s"), ("schema_violation", "chosen[1].tool_call_id")),
    (lambda: make_row([*Q, {"role": "tool", "content": "42"}], "a", source="s"),
     ("prompt_not_ending_with_user", "prompt")),
    (lambda: make_row(Q, TOOL_TURNS, TOOL_TURNS, source="s"), ("identical_pair", "rejected")),
]


@pytest.mark.parametrize(("build", "expected"), REFUSALS)
def test_v2_refusals_name_their_reason_and_field(build, expected):
    assert refusal(build) == expected
    assert expected[0] in REASONS


def test_an_empty_tool_call_list_is_no_tool_call():
    row = make_row(Q, [{"role": "assistant", "content": "42.", "tool_calls": []}], source="s")
    assert row == make_row(Q, "42.", source="s")


def stored(row: dict, **changes) -> dict:
    """``row`` as a shard gives it back (unset message fields are null there), with ``changes``."""
    def wide(messages):
        return None if messages is None else [{"tool_calls": None, "tool_call_id": None, "name": None, **m}
                                              for m in messages]
    return {**row, "prompt": wide(row["prompt"]), "chosen_turns": wide(row["chosen_turns"]),
            "rejected_turns": wide(row["rejected_turns"]), **changes}


def test_stored_v2_rows_are_checked_with_the_v2_rules():
    good = [make_row(Q, TOOL_TURNS, "41.", source="s"), make_row(Q, None, TOOL_TURNS, label=False, source="s")]
    for row in good:
        assert stored_row_errors(stored(row), content_id=stored_row_id) == []
    pair = good[0]

    def reasons(**changes) -> list[tuple[str, str]]:
        return [(e.reason, e.field) for e in stored_row_errors(stored(pair, **changes))]

    assert reasons(chosen="42.") == [("bad_continuation", "chosen_turns")]  # text and turns both set
    assert reasons(chosen_turns=[{"role": "assistant", "content": "42."}]) == [("bad_continuation", "chosen_turns")]
    assert reasons(chosen_turns=STORED_TURNS[:2]) == [("bad_continuation", "chosen_turns")]
    assert reasons(chosen_turns=[{**STORED_TURNS[0], "role": "user"}, STORED_TURNS[2]]) == [
        ("bad_tool_call", "chosen_turns[0].tool_calls")]
    assert reasons(label=True) == [("bad_label", "label")]
    assert reasons(rejected=None, label=False) == [("bad_label", "rejected")]
    assert reasons(rejected=None, rejected_turns=pair["chosen_turns"]) == [("identical_pair", "rejected")]
    edited = stored(pair, chosen_turns=[*STORED_TURNS[:2], {"role": "assistant", "content": "It is 41."}])
    assert [e.reason for e in stored_row_errors(edited, content_id=stored_row_id)] == ["id_mismatch"]
