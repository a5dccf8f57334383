"""Tests that kill mutants of `prefdata/formats/chatllama.py` the suite let survive (issue #15): each of the three
parsers keeps the source and exactly the keys it does not read (``meta``), and a reward record needs its score.
Records are written here; expected values follow from them by hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.formats.chatllama import parse_actor, parse_reward, parse_rlhf

ASKED = [{"role": "user", "content": "Name a colour."}]


@pytest.mark.parametrize("parse, record, chosen, chosen_score", [
    (parse_actor, {"user_input": "Name a colour.", "completion": "Blue."}, "Blue.", None),
    (parse_reward, {"user_input": "Name a colour.", "completion": "Blue.", "score": 0.75}, "Blue.", 0.75),
    (parse_rlhf, {"user_input": "Name a colour."}, None, None),
])
def test_each_parser_keeps_the_source_and_only_unread_keys_in_meta(parse, record, chosen, chosen_score):
    row = parse({**record, "lang": "en"}, "src")
    assert (row["source"], row["prompt"], row["chosen"], row["rejected"]) == ("src", ASKED, chosen, None)
    assert (row["chosen_score"], row["meta"]) == (chosen_score, '{"lang":"en"}')


def test_a_reward_record_needs_its_score():
    assert refusal(parse_reward, {"user_input": "Name a colour.", "completion": "Blue."}, "src") == (
        "missing_field", "score", "required key is missing")
