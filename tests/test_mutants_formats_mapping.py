"""Tests that kill mutants of `prefdata/formats/mapping.py` the suite let survive (issue #15): each refusal of a bad
``--map`` (message and field), a mapped column missing from a record, a prompt column holding messages, the system
column, both score columns, and the `Format` a mapping describes (name, description, number columns). Mappings and
records are written here; expected values follow from them by hand.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.contract.errors import PrefdataError
from prefdata.formats.mapping import check_mapping, mapping_format, parse_mapped

ASKED = {"role": "user", "content": "Name a colour."}
SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("mapping, message, field", [
    ({"prompt": "q", "answer": "a"}, "unknown field 'answer' in the column mapping; fields: prompt, chosen, rejected, "
                                     "chosen_score, rejected_score, system, group", "answer"),
    ({"prompt": ""}, "needs a column name", "prompt"),
    ({"chosen": "good"}, "the column mapping must name the prompt column (--map prompt=COLUMN)", "prompt"),
])
def test_bad_mappings_are_refused_with_the_field(mapping, message, field):
    with pytest.raises(PrefdataError) as error:
        check_mapping(mapping, "preference")
    assert (error.value.message, error.value.field) == (message, field)


@pytest.mark.parametrize("record, refused", [
    ({"q": "Name a colour.", "sys": None}, ("missing_field", "good", "mapped column is missing")),
    ({"q": 5, "sys": None}, ("schema_violation", "q", "is a number, not a string")),
    ({"q": [5], "good": "Blue."}, ("schema_violation", "q[0]", "is a number, not a message object")),
    ({"q": "Name a colour.", "sys": None, "good": 5}, ("schema_violation", "good", "is a number, not a string or message")),
    ({"q": "Name a colour.", "good": "Blue.", "sys": 5}, ("schema_violation", "sys", "is a number, not a string")),
])
def test_record_refusals_name_the_mapped_column(record, refused):
    assert refusal(parse_mapped, {"prompt": "q", "chosen": "good", "system": "sys"}, record, "src") == refused


@pytest.mark.parametrize("prompt, expected", [
    ("Name a colour.", [SYSTEM, ASKED]),
    ([ASKED], [SYSTEM, ASKED]),
    ([{"role": "system", "content": "Be terse."}, ASKED], [{"role": "system", "content": "Be terse."}, ASKED]),
])
def test_the_system_column_opens_the_prompt_unless_it_has_a_system_message(prompt, expected):
    row = parse_mapped({"prompt": "q", "system": "sys"}, {"q": prompt, "sys": "Be brief."}, "src")
    assert row["prompt"] == expected


def test_both_score_columns_are_read_and_unmapped_columns_kept():
    mapping = {"prompt": "q", "chosen": "good", "rejected": "bad", "chosen_score": "gs", "rejected_score": "bs"}
    record = {"q": "Name a colour.", "good": "Blue.", "bad": "Seven.", "gs": 0.75, "bs": 0.25, "lang": "en"}
    row = parse_mapped(mapping, record, "src")
    assert (row["source"], row["chosen_score"], row["rejected_score"], row["meta"]) == ("src", 0.75, 0.25,
                                                                                       '{"lang":"en"}')


def test_the_rejected_column_is_named_when_refused():
    mapping = {"prompt": "q", "chosen": "good", "rejected": "bad"}
    assert refusal(parse_mapped, mapping, {"q": "Name a colour.", "good": "Blue.", "bad": 5}, "src") == (
        "schema_violation", "bad", "is a number, not a string or message")


def test_the_group_column_is_read_as_text_and_a_null_one_leaves_the_default_group():
    asked = {"q": "Name a colour.", "good": "Blue."}
    unmapped = parse_mapped({"prompt": "q", "chosen": "good"}, asked, "src")
    null_group = parse_mapped({"prompt": "q", "chosen": "good", "group": "g"}, {**asked, "g": None}, "src")
    numbered = parse_mapped({"prompt": "q", "chosen": "good", "group": "g"}, {**asked, "g": 7}, "src")
    assert (null_group["group"], numbered["group"]) == (unmapped["group"], "7")
    assert unmapped["group"] != "None"


def test_an_unsup_mapping_reads_its_text_column():
    row = mapping_format({"text": "body"}, "unsup").parse({"body": "Some text.", "lang": "en"}, "src")
    assert (row["source"], row["text"], row["meta"]) == ("src", "Some text.", '{"lang":"en"}')


def test_without_score_columns_a_pair_has_no_scores():
    row = parse_mapped({"prompt": "q", "chosen": "good", "rejected": "bad"},
                       {"q": "Name a colour.", "good": "Blue.", "bad": "Seven."}, "src")
    assert (row["prompt"], row["chosen"], row["rejected"]) == ([ASKED], "Blue.", "Seven.")
    assert (row["chosen_score"], row["rejected_score"]) == (None, None)


def test_the_format_a_mapping_describes():
    fmt = mapping_format({"prompt": "q", "chosen_score": "gs", "rejected_score": "bs"}, "preference")
    assert (fmt.name, fmt.row_schema, fmt.signature) == ("mapping", "preference", frozenset({"q", "gs", "bs"}))
    assert fmt.description == "explicit column mapping: prompt=q, chosen_score=gs, rejected_score=bs"
    assert fmt.number_fields == frozenset({"gs", "bs"})
