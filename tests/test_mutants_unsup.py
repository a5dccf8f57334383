"""Tests that kill mutants of `prefdata/formats/unsup.py` (issue #15): the text field is read and required, the source
is kept, every other key goes to `meta`, and the format is registered under its name, row schema and signature.
Records are written here; expected values follow from them by hand."""

from __future__ import annotations

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import unsup_id
from prefdata.formats.unsup import FORMATS, parse_text


def test_text_row_keeps_source_and_leftover_keys_as_meta():
    row = parse_text({"text": "Plain text.", "rating": 3}, "redteam")
    assert row == {"id": unsup_id("Plain text."), "source": "redteam", "text": "Plain text.", "meta": '{"rating":3}'}


def test_a_record_with_only_text_has_empty_meta():
    assert parse_text({"text": "Plain text."}, "s")["meta"] == "{}"


@pytest.mark.parametrize("record, message", [
    ({"body": "Plain text."}, "required key is missing"),
    ({"text": 7}, "is a number, not a string"),
])
def test_the_text_field_is_required_and_named(record, message):
    with pytest.raises(RowError) as error:
        parse_text(record, "s")
    assert (error.value.field, error.value.message) == ("text", message)


def test_the_format_is_registered_for_unsup_rows_by_its_text_key():
    [fmt] = FORMATS
    assert (fmt.name, fmt.row_schema, fmt.signature, fmt.parse) == ("unsup-text", "unsup", frozenset({"text"}), parse_text)
    assert fmt.description.startswith("unsupervised text: a text field")
