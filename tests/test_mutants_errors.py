"""Tests that kill mutants of `prefdata/contract/errors.py` (issue #15): the one-line ``FILE:LINE: field: message``
form with each part present or absent (a line wins over an index), the exit codes, and `RowError`'s fields."""

from __future__ import annotations

import pytest

from prefdata.contract.errors import PrefdataError, RowError, ValidationFailed


@pytest.mark.parametrize("where, expected", [
    ({}, "bad value"),
    ({"field": "ratio"}, "ratio: bad value"),
    ({"file": "in.jsonl"}, "in.jsonl: bad value"),
    ({"file": "in.jsonl", "line": 7}, "in.jsonl:7: bad value"),
    ({"file": "in.jsonl", "line": 0}, "in.jsonl:0: bad value"),
    ({"file": "in.json", "index": 3}, "in.json[3]: bad value"),
    ({"file": "in.json", "index": 0, "field": "score"}, "in.json[0]: score: bad value"),
    ({"file": "in.jsonl", "line": 7, "index": 3, "field": "chosen"}, "in.jsonl:7: chosen: bad value"),
    ({"line": 7, "index": 3}, "bad value"),  # no file: nowhere to point
    ({"file": "", "line": 2}, ":2: bad value"),
    ({"field": ""}, "bad value"),
])
def test_prefdata_error_is_one_line_naming_where_and_what(where, expected):
    error = PrefdataError("bad value", **where)
    assert str(error) == expected
    assert (error.message, error.file, error.line, error.index, error.field) == (
        "bad value", where.get("file"), where.get("line"), where.get("index"), where.get("field"))
    assert error.args == ("bad value",)


def test_exit_codes_two_for_a_user_error_one_for_failed_validation():
    assert PrefdataError("x").exit_code == 2
    assert ValidationFailed("x").exit_code == 1
    assert isinstance(ValidationFailed("x", file="f", line=1), PrefdataError)
    assert str(ValidationFailed("3 violations", file="f", line=1)) == "f:1: 3 violations"


def test_row_error_keeps_reason_and_field():
    error = RowError("empty_reply", "is empty", "chosen")
    assert (error.reason, error.message, error.field, str(error), error.args) == (
        "empty_reply", "is empty", "chosen", "chosen: is empty", ("is empty",))
    bare = RowError("identical_pair", "chosen and rejected are the same")
    assert (bare.field, str(bare)) == (None, "chosen and rejected are the same")
    assert str(RowError("r", "m", "")) == "m"
