"""Tests that kill mutants of `prefdata/formats/orca.py` (issue #15). Before these, no test mapped to the module ran
its parser directly (test_formats_v2 imports an Orca CSV): the system message (an empty cell adds none), the field
each refusal names, and the source and leftover keys (``meta``). Records are written here; expected values follow from
them by hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.formats.orca import parse

PAIR = {"question": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}
ASKED = {"role": "user", "content": "Name a colour."}


@pytest.mark.parametrize("system, prompt", [
    ("Be brief.", [{"role": "system", "content": "Be brief."}, ASKED]),
    ("", [ASKED]),
    (None, [ASKED]),
])
def test_the_system_cell_becomes_a_system_message_unless_empty(system, prompt):
    row = parse({"system": system, **PAIR, "id": "orca-1"}, "src")
    assert (row["source"], row["prompt"], row["chosen"], row["rejected"]) == ("src", prompt, "Blue.", "Seven.")
    assert row["meta"] == '{"id":"orca-1"}'


@pytest.mark.parametrize("changes, refused", [
    ({"question": None}, ("missing_field", "question", "required value is empty (null)")),
    ({"question": 5}, ("schema_violation", "question", "is a number, not a string")),
    ({"system": 5}, ("schema_violation", "system", "is a number, not a string")),
    ({"chosen": None}, ("missing_field", "chosen", "required value is empty (null)")),
    ({"chosen": 5}, ("schema_violation", "chosen", "is a number, not a string or message")),
    ({"rejected": None}, ("missing_field", "rejected", "required value is empty (null)")),
    ({"rejected": 5}, ("schema_violation", "rejected", "is a number, not a string or message")),
])
def test_refusals_name_the_field(changes, refused):
    assert refusal(parse, {**PAIR, **changes}, "src") == refused
