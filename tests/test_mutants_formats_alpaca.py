"""Tests that kill mutants of `prefdata/formats/alpaca.py` the suite let survive (issue #15): each refusal of a bad
``history`` (reason, field, message), the field a bad reply names, and the source and leftover keys (``meta``) of a
preference row. Records are written here; expected values follow from them by hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.formats.alpaca import parse_alpaca, parse_alpaca_preference

PAIR = {"instruction": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}


@pytest.mark.parametrize("history, refused", [
    ("Hi", ("schema_violation", "history", "is not a list of [instruction, response] pairs")),
    ([["Hi"]], ("schema_violation", "history[0]", "is not an [instruction, response] pair")),
    ([["Hi", "Hello."], [5, "Hello."]], ("schema_violation", "history[1][0]", "is a number, not a string")),
    ([["Hi", None]], ("schema_violation", "history[0][1]", "is a null, not a string")),
])
def test_bad_history_refusals(history, refused):
    record = {"instruction": "Name a colour.", "output": "Blue.", "history": history}
    assert refusal(parse_alpaca, record, "src") == refused


@pytest.mark.parametrize("side", ["chosen", "rejected"])
def test_preference_reply_refusal_names_the_side(side):
    assert refusal(parse_alpaca_preference, {**PAIR, side: 5}, "src") == (
        "schema_violation", side, "is a number, not a string or message")


def test_preference_row_keeps_the_source_and_only_unread_keys_in_meta():
    record = {**PAIR, "input": "Sky", "system": "Be brief.", "history": [], "lang": "en"}
    row = parse_alpaca_preference(record, "src")
    assert row["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Name a colour.\n\nSky"}]
    assert (row["source"], row["chosen"], row["rejected"], row["meta"]) == ("src", "Blue.", "Seven.", '{"lang":"en"}')


def test_demonstration_keeps_the_source_and_only_unread_keys_in_meta():
    row = parse_alpaca({"instruction": "Name a colour.", "output": "Blue.", "history": [["Hi", "Hello."]],
                        "lang": "en"}, "src")
    assert row["prompt"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": "Name a colour."}]
    assert (row["source"], row["chosen"], row["rejected"], row["meta"]) == ("src", "Blue.", None, '{"lang":"en"}')
