"""`prefdata.contract.rules` where mutation testing found it unchecked: every broken rule of a stored row reported with
its reason, field and message; numbers spelled as text; fields as JSON pointers; JSON type names."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from prefdata.contract.rules import field_pointer, number_from_text, stored_row_errors, type_name

PROMPT = [{"role": "user", "content": "Name a tree."}]


def stored(**changes) -> dict:
    """A stored preference row, valid as written (its id is the canonical hash of its content), then ``changes``."""
    content = json.dumps([PROMPT, "Oak.", "Rock."], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    row = {"id": hashlib.sha256(content.encode()).hexdigest()[:16], "source": "custom/t", "group": "g1",
           "prompt": PROMPT, "chosen": "Oak.", "rejected": "Rock.", "chosen_score": None, "rejected_score": None,
           "meta": "{}"}
    return {**row, **changes}


def verdicts(row: dict, **kwargs) -> list[tuple[str, str | None, str]]:
    return [(e.reason, e.field, e.message) for e in stored_row_errors(row, **kwargs)]


def test_a_valid_stored_row_breaks_no_rule():
    row = stored()
    assert verdicts(row, content_id=lambda r: row["id"]) == []


def test_every_broken_rule_is_reported_not_only_the_first():
    row = stored(id="", source=None, group="", rejected_score="high", meta="[1, 2]")
    assert verdicts(row) == [("missing_field", "id", "is null or empty"), ("missing_field", "source", "is null or empty"),
                             ("missing_field", "group", "is null or empty"),
                             ("schema_violation", "rejected_score", "is a string, not a number"),
                             ("bad_meta", "meta", "is not a JSON object")]


def test_meta_that_is_not_json_is_bad_meta():
    assert verdicts(stored(meta="{oops")) == [("bad_meta", "meta", "is not valid JSON")]


def test_an_edited_row_is_an_id_mismatch():
    row = stored(chosen="Birch.")
    expected = "0123456789abcdef"
    assert verdicts(row, content_id=lambda r: expected) == [
        ("id_mismatch", "id", f"{row['id']} is not the hash of the row's content ({expected}): "
                              "the row was edited after it was written")]


@pytest.mark.parametrize(("text", "number"), [("3", 3), (" -2 ", -2), ("3.0", 3.0), ("1e3", 1000.0), ("2E1", 20.0),
                                              (".5", 0.5), ("high", "high"), ("", "")])
def test_number_from_text_keeps_the_type_the_text_spells(text, number):
    got = number_from_text(text)
    assert got == number and type(got) is type(number)


def test_field_pointer_escapes_per_json_pointer():
    assert field_pointer("prompt[0].role") == "/prompt/0/role"
    assert field_pointer("a/b~c") == "/a~1b~0c"
    assert field_pointer(None) is None


def test_type_names_are_json_names_else_the_python_name():
    assert [type_name(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "null", "boolean", "number", "number", "string", "list", "object"]
    assert type_name(Decimal("1.5")) == "Decimal"
