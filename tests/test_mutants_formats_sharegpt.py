"""Tests that kill mutants of `prefdata/formats/sharegpt.py` the suite let survive (issue #15): a top-level
``system`` next to a system turn, the keys a ranking row reads (the rest is ``meta``), a ranking row missing one side,
the field each refusal names, and LLaMA-Factory's empty last gpt turn (a prompt). Records are written here; expected
values follow from them by hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.formats.sharegpt import parse_sharegpt

HUMAN = {"from": "human", "value": "Hi"}


def test_a_system_turn_wins_over_the_top_level_system():
    record = {"system": "Be brief.", "conversations": [{"from": "system", "value": "Be terse."}, HUMAN,
                                                       {"from": "gpt", "value": "Hello."}]}
    row = parse_sharegpt(record, "src")
    assert row["prompt"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]


def test_ranking_row_keeps_only_unread_keys_in_meta():
    record = {"system": "Be brief.", "conversations": [HUMAN], "chosen": {"from": "gpt", "value": "Hello."},
              "rejected": "Go away.", "tools": "[]"}
    row = parse_sharegpt(record, "src")
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (row["source"], row["chosen"], row["rejected"], row["meta"]) == ("src", "Hello.", "Go away.",
                                                                            '{"tools":"[]"}')


@pytest.mark.parametrize("sides, refused", [
    ({"chosen": "Hello."}, ("missing_field", "rejected", "required key is missing")),
    ({"rejected": "Go away."}, ("missing_field", "chosen", "required key is missing")),
    ({"chosen": 5, "rejected": "Go away."}, ("schema_violation", "chosen", "is a number, not a string or message")),
    ({"chosen": "Hello.", "rejected": 5}, ("schema_violation", "rejected", "is a number, not a string or message")),
])
def test_ranking_refusals_name_the_side(sides, refused):
    assert refusal(parse_sharegpt, {"conversations": [HUMAN], **sides}, "src") == refused


def test_an_empty_last_gpt_turn_makes_a_prompt():
    record = {"conversations": [HUMAN, {"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Bye"},
                                {"from": "gpt", "value": ""}]}
    row = parse_sharegpt(record, "src")
    assert row["prompt"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": "Bye"}]
    assert (row["source"], row["chosen"], row["rejected"], row["chosen_turns"]) == ("src", None, None, None)
