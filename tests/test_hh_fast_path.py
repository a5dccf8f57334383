"""The bulk HH path (pyarrow-decoded records, columnar pair rows) must give exactly what the per-record path gives."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import (
    PREFERENCE_SCHEMA_ID,
    ROLES,
    _ids,
    _ids_utf8,
    make_row,
    make_row_from_turns,
    prompt_group,
    row_id,
)
from prefdata.formats import hh
from prefdata.pipeline.parallel import _string_records, convert_block, convert_lines

PAIR = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."}


class _PerRecord:  # the HH parser without its columnar twin: the plain dict-per-row path
    row = staticmethod(hh.hh_row)


def _both(lines: list[bytes]):
    fast = convert_lines(lines, 1, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    plain = convert_lines(lines, 1, "f", _PerRecord(), "s", PREFERENCE_SCHEMA_ID)
    return fast, plain


def _assert_same(fast, plain) -> None:
    assert fast.records == plain.records
    assert fast.rejects == plain.rejects
    assert (fast.table is None) == (plain.table is None)
    if fast.table is not None:
        assert fast.table.equals(plain.table, check_metadata=True)


def test_real_file_same_table_and_quarantine(hh_harmless_test):
    lines = gzip.open(hh_harmless_test).read().split(b"\n")[:-1]
    assert _string_records(lines) is not None  # the real file takes the pyarrow path
    fast, plain = _both(lines)
    _assert_same(fast, plain)
    assert fast.table.num_rows > 2000 and fast.rejects


@pytest.mark.parametrize("odd", [
    b"",  # blank line
    b"[1, 2]",  # not an object
    b'{"chosen": "x"',  # bad JSON
    b'{"chosen": "\xff", "rejected": "x"}',  # bad UTF-8
    b'{"chosen": "a\tb", "rejected": "x"}',  # raw control character
    b'{"chosen": "\\ud800", "rejected": "x"}',  # lone surrogate escape
    b'{"chosen": "a", "chosen": "b", "rejected": "x"}',  # duplicate key
    b'{"chosen": 3, "rejected": "x"}',  # not a string
    b'{"chosen": null, "rejected": "x"}',
    b'{"rejected": "x"}',  # missing field
    b"{}",
    b'{"transcript": "\\n\\nHuman: hi", "rating": 2}',  # red-team schema
    json.dumps(PAIR).encode() + b" " + json.dumps(PAIR).encode(),  # two objects on one line
])
def test_odd_lines_fall_back_and_agree(odd):
    lines = [json.dumps(PAIR).encode(), odd, json.dumps(PAIR).encode() + b"\r"]
    assert _string_records(lines) is None
    _assert_same(*_both(lines))


def test_empty_objects_are_records():
    lines = [b"{}", b"{}"]
    assert _string_records(lines) is None
    fast, plain = _both(lines)
    _assert_same(fast, plain)
    assert fast.records == 2 and [q.reason for q in fast.rejects] == ["missing_field"] * 2


def test_quarantined_records_keep_their_field_order():
    same = "\n\nHuman: Q?\n\nAssistant: A."
    lines = [json.dumps({"rejected": same, "chosen": same}).encode(), json.dumps(PAIR).encode(),
             json.dumps({"rejected": "y", "chosen": "x"}).encode()]
    assert _string_records(lines) is not None
    fast, plain = _both(lines)
    _assert_same(fast, plain)
    assert [q.reason for q in fast.rejects] == ["identical_pair", "diverges_before_assistant"]
    assert [list(q.record) for q in fast.rejects] == [["rejected", "chosen"]] * 2


def test_blocks_split_lines_as_readlines_does():
    pair = json.dumps(PAIR).encode()
    text = pair + b"\n" + pair + b"\r\n" + pair + b"\n\n[1]"
    whole = convert_lines(text.splitlines(keepends=True), 1, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    block = convert_block(text, 1, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    assert block.records == whole.records == 4  # the blank line is no record
    assert block.rejects == whole.rejects
    assert [q.line for q in block.rejects] == [5]
    assert block.table.equals(whole.table) and block.table.num_rows == 3


def _outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RowError as e:
        return (e.reason, e.message, e.field)


def test_make_row_from_turns_equals_make_row():
    rng = random.Random(3)
    texts = ["", " ", "\n", "a", "Bé\"\\", "\x00\x1f", "\u2028😀", "same"]
    for _ in range(3000):
        roles = [rng.choice(["user", "assistant"]) for _ in range(rng.randrange(0, 4))]
        contents = ["".join(rng.choice(texts) for _ in range(rng.randrange(0, 3))) for _ in roles]
        chosen, rejected = (rng.choice(texts) + rng.choice(texts) for _ in range(2))
        prompt = [{"role": r, "content": c} for r, c in zip(roles, contents)]
        expected = _outcome(make_row, prompt, chosen, rejected, source="s")
        got = _outcome(make_row_from_turns, roles, contents, chosen, rejected, source="s")
        assert got == expected
        if isinstance(got, dict):
            assert list(got) == list(expected)


def test_ids_equal_the_contract_definition_on_both_spellings():
    """`_ids` escapes UTF-8 bytes where it can and falls back to `encode_basestring`; both must equal row_id/group."""
    rng = random.Random(11)
    texts = ["a", "é", "\n", "\"", "\\", "\\n", "\t", "\x00", "\x7f", "\u2028", "😀", "\xfe", "Human:", " "]
    spellings = set()
    for _ in range(3000):
        roles = [rng.choice(ROLES) for _ in range(rng.randrange(1, 4))]
        contents = ["".join(rng.choice(texts) for _ in range(rng.randrange(0, 4))) for _ in roles]
        chosen, rejected = (rng.choice([None, "".join(rng.choice(texts) for _ in range(3))]) for _ in range(2))
        messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
        assert _ids(roles, contents, chosen, rejected) == (row_id(messages, chosen, rejected), prompt_group(messages))
        spellings.add(_ids_utf8(roles, contents, chosen, rejected) is None)
    assert spellings == {True, False}  # both the byte path and the generic path were exercised
