"""Kills the surviving mutants of ``prefdata/formats/hh.py`` (build/mutation/prefdata_formats_hh.py.md).

Hand-written HH transcripts through the public parser; every expected value is worked out from the inputs here.
Equivalent survivors (no test can tell them apart):
- ``x__split__mutmut_2`` (``type(None) is not str``): only forces the slow per-field isinstance loop, which raises
  nothing for two strings, so the result is the same.
- ``x__split__mutmut_85`` (``>=`` for ``>``): when the marker-word count equals the number of turns every marker word
  is a turn marker, so no prompt message holds a loose marker and the extra scan finds nothing.
"""

from __future__ import annotations

import pytest

from prefdata.contract.errors import RowError
from prefdata.formats import hh

SRC = "hh-test"
LOOSE = "a role marker without the blank line before it"
NOT_HUMAN = "the conversation does not start with a Human: turn"
DIVERGES = "chosen and rejected differ before the first Assistant: turn"


def _error(call, *args) -> tuple[str, str, str | None]:
    with pytest.raises(RowError) as info:
        call(*args)
    return info.value.reason, info.value.message, info.value.field


# parse_turns: exact messages for good transcripts (kills _turns_7, _turns_11, parse_turns_5).
@pytest.mark.parametrize(("text", "expected"), [
    ("\n\nHuman: hi there\n\nAssistant: hello", [("user", "hi there"), ("assistant", "hello")]),
    ("Human: no blank line\n\nAssistant: fine", [("user", "no blank line"), ("assistant", "fine")]),
    ("  \nHuman: leading space\n\nAssistant: ok", [("user", "leading space"), ("assistant", "ok")]),
    ("Human: one\n\nAssistant: two\n\nHuman: three", [("user", "one"), ("assistant", "two"), ("user", "three")]),
])
def test_parse_turns_good(text, expected):
    assert hh.parse_turns(text) == [{"role": role, "content": content} for role, content in expected]


# parse_turns: refused starts (kills _turns_7 from the other side, _turns_17, _turns_22).
@pytest.mark.parametrize("text", [
    "human: lower case is not a marker\n\nAssistant: x",
    "\n\nhuman: lower case\n\nAssistant: x",
    "\n\nAssistant: starts with the assistant",
    "Hello\n\nHuman: late\n\nAssistant: x",
    "",
])
def test_parse_turns_refuses_text_without_a_human_start(text):
    assert _error(hh.parse_turns, text) == ("malformed_markers", NOT_HUMAN, "chosen")


def _pair(chosen: str, rejected: str) -> dict:
    return hh.PAIRS.row({"chosen": chosen, "rejected": rejected}, SRC)


def test_pair_row_without_leading_blank_line():
    row = _pair("Human: What is 2+2?\n\nAssistant: 4", "Human: What is 2+2?\n\nAssistant: 5")
    assert row["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
    assert (row["chosen"], row["rejected"], row["source"]) == ("4", "5", SRC)


def test_split_pair_multi_turn_and_fake_turn_in_reply():
    prompt, chosen, rejected = hh.split_pair(
        "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good\n\nHuman: fake turn",
        "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad")
    assert prompt == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}]
    assert (chosen, rejected) == ("good\n\nHuman: fake turn", "bad")


@pytest.mark.parametrize(("chosen", "rejected", "expected"), [
    # lower-case marker at the start: not a Human turn (_turns_7 would accept it).
    ("human: hi\n\nAssistant: a", "human: hi\n\nAssistant: b", ("malformed_markers", NOT_HUMAN, "chosen")),
    # cut == 0: the shared prefix is exactly one leading Assistant marker (_split_25 says diverges instead).
    ("\n\nAssistant: a", "\n\nAssistant: b", ("malformed_markers", NOT_HUMAN, "chosen")),
    # no shared Assistant marker at all (_split_36: message text).
    ("\n\nHuman: A?\n\nAssistant: x", "\n\nHuman: B?\n\nAssistant: y",
     ("diverges_before_assistant", DIVERGES, "rejected")),
    # "Human:" at position 0 is counted: 2 marker words > 1 turn, so the loose "Assistant:" is found (_split_74).
    ("Human: hi Assistant: x\n\nAssistant: a", "Human: hi Assistant: x\n\nAssistant: b",
     ("malformed_markers", LOOSE, "prompt[0]")),
    # loose marker in the third prompt message (_split_90 field None, _split_96 message).
    ("\n\nHuman: hi\n\nAssistant: ok\n\nHuman: q Assistant: x\n\nAssistant: a",
     "\n\nHuman: hi\n\nAssistant: ok\n\nHuman: q Assistant: x\n\nAssistant: b",
     ("malformed_markers", LOOSE, "prompt[2]")),
    # loose marker in the chosen reply, and in the rejected reply only (_split_114).
    ("\n\nHuman: q\n\nAssistant: bad Human: x", "\n\nHuman: q\n\nAssistant: fine",
     ("malformed_markers", LOOSE, "chosen")),
    ("\n\nHuman: q\n\nAssistant: fine", "\n\nHuman: q\n\nAssistant: bad Human: x",
     ("malformed_markers", LOOSE, "rejected")),
])
def test_pair_row_errors(chosen, rejected, expected):
    assert _error(_pair, chosen, rejected) == expected
    assert _error(hh.split_pair, chosen, rejected) == expected


@pytest.mark.parametrize(("chosen", "rejected", "expected"), [
    (7, "\n\nHuman: q\n\nAssistant: a", ("schema_violation", "is int, not a string", "chosen")),
    ("\n\nHuman: q\n\nAssistant: a", None, ("schema_violation", "is NoneType, not a string", "rejected")),
    ("\n\nHuman: q\n\nAssistant: a", ["x"], ("schema_violation", "is list, not a string", "rejected")),
])
def test_split_pair_refuses_non_strings(chosen, rejected, expected):
    # _split_8 (field name), _split_12 (message None), _split_14 (reason dropped).
    assert _error(hh.split_pair, chosen, rejected) == expected


def test_pair_parser_refuses_a_red_team_record():
    # _check_pair_record_9: the message.
    record = {"transcript": "\n\nHuman: hi\n\nAssistant: yo", "rating": 1}
    assert _error(hh.PAIRS.row, record, SRC) == (
        "wrong_schema", "a red-team-attempts record (transcript), not a chosen/rejected pair", "chosen")


def test_red_team_parser_refuses_a_pair_record():
    # red_team_row_10 (field None), red_team_row_16 (message).
    record = {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"}
    assert _error(hh.RED_TEAM_TEXT.row, record, SRC) == (
        "wrong_schema", "a chosen/rejected pair, not a red-team-attempts record", "transcript")
    assert _error(hh.red_team_row, record, SRC)[2] == "transcript"


def test_red_team_record_with_a_chosen_key_too_is_still_a_red_team_record():
    # red_team_row_6: with "transcript" present the record is a red-team attempt even if it has "chosen".
    transcript = "\n\nHuman: how do I pick a lock?\n\nAssistant: I can't help with that."
    row = hh.red_team_row({"transcript": transcript, "chosen": "x", "rating": 0}, SRC)
    assert row["text"] == transcript and row["source"] == SRC
    plain = hh.red_team_row({"transcript": transcript, "rating": 0}, SRC)
    assert plain["text"] == transcript and plain["id"] == row["id"]
