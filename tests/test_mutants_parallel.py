"""Tests that kill mutants of `prefdata/pipeline/parallel.py` the suite let survive (issue #15): the per-line reject
reasons and messages, the pyarrow bulk decoder's fall-backs, block splitting, and the worker set-up, on lines written
here (every expected line number, reason and row comes from them).

Equivalent survivors (one line each):
- `convert_lines` decoding with "UTF-8": codec names are case-insensitive.
- `_string_records` splitting the brackets-only block with ``split(None)``: only brackets and line ends are left in it.
- `_convert_pairs_fast` calling `_string_records` without ``block``: it joins the same lines again.
- `_PairColumns.table` with "REJECTED_SCORE", ``pa.array(..., None)`` or ``pa.nulls(n)``: the columns are nulls or
  strings, and `pa.Table.from_arrays` casts a null array to the schema's type.
"""

from __future__ import annotations

import gc
import gzip
import json

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, UNSUP_SCHEMA_ID, make_row
from prefdata.formats import hh
from prefdata.pipeline import parallel
from prefdata.pipeline.parallel import convert_block, convert_file, convert_lines

PAIR = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."}
PAIR_LINE = json.dumps(PAIR).encode()


class Plain:
    """A row parser without a columnar twin: a ``{"q", "a", "b"}`` record is a pair; "a" == "b" is a RowError."""

    def row(self, record, source):
        if record.get("a") == record.get("b"):
            raise RowError("identical_pair", "chosen and rejected are the same", field="chosen")
        return make_row([{"role": "user", "content": record["q"]}], record["a"], record["b"], source=source)


def line(q: str, a: str = "yes", b: str = "no") -> bytes:
    return json.dumps({"q": q, "a": a, "b": b}).encode()


def reasons(chunk) -> list[tuple[str, int]]:
    return [(r.reason, r.line) for r in chunk.rejects]


def test_each_bad_line_gets_its_reason_message_and_line_number():
    deep = b'{"q": "\xff", "r": ' + b"[" * 101 + b"]" * 101 + b"}"  # too deep is checked before UTF-8
    lines = [line("one"), b"", b"  ", deep, b'{"q": "\xff"}', b"{nope\r\n", b"[1]", line("same", "x", "x"), line("two")]
    chunk = convert_lines(lines, 10, "in.jsonl", Plain(), "src", PREFERENCE_SCHEMA_ID)
    assert chunk.records == 7  # blank lines are no records
    assert reasons(chunk) == [("too_deep", 13), ("bad_utf8", 14), ("bad_json", 15), ("not_an_object", 16),
                              ("identical_pair", 17)]
    too_deep, bad_utf8, bad_json, not_object, row_error = chunk.rejects
    assert {r.file for r in chunk.rejects} == {"in.jsonl"}
    assert too_deep.message == "arrays/objects nested deeper than 100 levels"
    assert too_deep.record.startswith('{"q": "\ufffd", "r": [[[')
    assert bad_utf8.message == "invalid UTF-8 at byte 7" and bad_utf8.record == '{"q": "\ufffd"}'
    assert bad_json.message.startswith("invalid JSON: ") and bad_json.record == "{nope"
    assert not_object.message == "a JSON list, not an object" and not_object.record == [1]
    assert (row_error.message, row_error.field, row_error.record) == ("chosen and rejected are the same", "chosen",
                                                                      {"q": "same", "a": "x", "b": "x"})
    assert [p[0]["content"] for p in chunk.table.column("prompt").to_pylist()] == ["one", "two"]
    assert chunk.table.column("source").to_pylist() == ["src", "src"]


def test_a_bom_is_dropped_on_the_first_line_only_and_line_ends_are_stripped():
    bom = b"\xef\xbb\xbf"
    first = convert_lines([bom + line("a") + b"\r\n", line("b") + b"\n"], 1, "f", Plain(), "s", PREFERENCE_SCHEMA_ID)
    assert first.rejects == [] and first.table.num_rows == 2
    later = convert_lines([line("a"), bom + line("b")], 1, "f", Plain(), "s", PREFERENCE_SCHEMA_ID)
    assert reasons(later) == [("bad_json", 2)]
    not_first = convert_lines([bom + line("a")], 2, "f", Plain(), "s", PREFERENCE_SCHEMA_ID)
    assert reasons(not_first) == [("bad_json", 2)]


def test_a_chunk_without_rows_has_no_table():
    chunk = convert_lines([b"[1]", b""], 1, "f", Plain(), "s", PREFERENCE_SCHEMA_ID)
    assert chunk.table is None and chunk.records == 1
    assert convert_lines([b"[1]"], 1, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID).table is None


def test_a_pair_parser_on_another_schema_takes_the_per_row_path():
    class Text:
        def row(self, record, source):
            return {"id": record["id"], "source": source, "text": record["text"], "meta": "{}"}

        def pair_parts(self, record):  # never called for a schema that is not pairs
            raise AssertionError("columnar path taken")

    chunk = convert_lines([json.dumps({"id": "a1", "text": "hello"}).encode()], 1, "f", Text(), "s", UNSUP_SCHEMA_ID)
    assert chunk.table.column("text").to_pylist() == ["hello"] and chunk.table.column("id").to_pylist() == ["a1"]


def test_the_columnar_path_keeps_line_numbers_of_its_rejects():
    same = "\n\nHuman: Q?\n\nAssistant: A."
    lines = [PAIR_LINE, json.dumps({"chosen": same, "rejected": same}).encode(), PAIR_LINE]
    assert parallel._string_records(lines) is not None
    chunk = convert_lines(lines, 5, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    assert chunk.records == 3 and reasons(chunk) == [("identical_pair", 6)] and chunk.table.num_rows == 2
    assert chunk.rejects[0].file == "f" and chunk.rejects[0].record == {"chosen": same, "rejected": same}
    assert chunk.table.column("source").to_pylist() == ["s", "s"]


def test_string_records_decodes_objects_of_strings_and_refuses_the_rest():
    assert parallel._string_records([b'{"a": "x", "b": "y"}', b'{"a": "z", "b": "w"}']) == [
        {"a": "x", "b": "y"}, {"a": "z", "b": "w"}]
    assert parallel._string_records([b'{"a": "x"}', b' {"a": "y"}']) is None  # not every line starts with "{"
    assert parallel._string_records([b"{}"]) is None  # no columns
    assert parallel._string_records([b'{"a": "x"}', b'{"a": null}']) is None
    assert parallel._string_records([b'{"a": 1}']) is None
    assert parallel._string_records([b'{"a": "x"} {"a": "y"}']) is None  # two objects, one line
    assert parallel._string_records([b'{"a": "\xff"}']) is None
    assert parallel._string_records([b'{"a": "x"', b'{"a": "y"}']) is None  # bad JSON


def test_string_records_leaves_deep_lines_to_the_per_line_path():
    deep = b'{"a": "x", "b": ' + b"[" * 101 + b"]" * 101 + b"}"
    assert parallel._string_records([b'{"a": "x", "b": "y"}', deep]) is None
    shallow = b'{"a": "x", "b": "' + b"[" * 150 + b'"}'  # brackets inside a string nest nothing
    assert parallel._string_records([shallow]) == [{"a": "x", "b": "[" * 150}]


def test_blocks_end_at_line_ends_and_number_their_first_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 8)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"0123456789\nab\ncd\nef\n")
    assert list(parallel._blocks(path)) == [(1, b"0123456789\n"), (2, b"ab\ncd\nef\n")]
    path.write_bytes(b"ab\ncd\nef")  # no line end at the end of the file
    assert list(parallel._blocks(path)) == [(1, b"ab\ncd\nef")]


def test_convert_block_splits_lines_as_readlines_does():
    chunk = convert_block(PAIR_LINE + b"\n\n" + PAIR_LINE + b"\n", 3, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    assert chunk.records == 2 and chunk.table.num_rows == 2 and chunk.rejects == []
    last = convert_block(b"[1]\n" + b"[2]", 3, "f", hh.PAIRS, "s", PREFERENCE_SCHEMA_ID)
    assert reasons(last) == [("not_an_object", 3), ("not_an_object", 4)]


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_convert_file_yields_chunks_in_file_order_with_or_without_workers(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 64)
    path = tmp_path / "in.jsonl.gz"
    lines = [line(f"question {i}") for i in range(12)] + [b"[1]"]
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join(lines) + b"\n")
    chunks = list(convert_file(path, Plain(), source="s", schema_id=PREFERENCE_SCHEMA_ID, workers=workers))
    assert len(chunks) > 2
    prompts = [row[0]["content"] for c in chunks if c.table is not None for row in c.table.column("prompt").to_pylist()]
    assert prompts == [f"question {i}" for i in range(12)]
    assert [r.line for c in chunks for r in c.rejects] == [13] and sum(c.records for c in chunks) == 13


def test_default_workers_none_for_small_files_else_one_per_core_up_to_8(tmp_path, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x" * 10)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 11)
    assert parallel.default_workers(path) == 0
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 10)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 3)
    assert parallel.default_workers(path) == 3
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 32)
    assert parallel.default_workers(path) == 8
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: None)
    assert parallel.default_workers(path) == 1
    assert parallel.PARALLEL_MIN_BYTES == 10 and parallel.CHUNK_BYTES == 4 << 20


def test_convert_file_picks_default_workers(tmp_path, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("q") + b"\n")
    asked = []
    monkeypatch.setattr(parallel, "default_workers", lambda p: asked.append(p) or 0)
    chunks = list(convert_file(path, Plain(), source="s", schema_id=PREFERENCE_SCHEMA_ID))
    assert asked == [path] and chunks[0].table.num_rows == 1


def test_start_worker_collects_less_often_and_leaves_pandas_importable(monkeypatch):
    import sys

    threshold = gc.get_threshold()
    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    try:
        parallel._start_worker()
        assert gc.get_threshold() == (50_000, 50, 100)
    finally:
        gc.set_threshold(*threshold)
    assert not any(isinstance(finder, parallel._NoPandas) for finder in sys.meta_path)


def test_no_pandas_refuses_only_pandas():
    finder = parallel._NoPandas()
    assert finder.find_spec("numpy") is None
    with pytest.raises(ModuleNotFoundError, match="pandas is not imported in prefdata's workers") as refused:
        finder.find_spec("pandas")
    assert refused.value.name == "pandas"


class PairsOnly:
    """The HH pair parser whose per-record ``row`` must not run: pair rows take the columnar twin."""

    pair_parts = staticmethod(hh.PAIRS.pair_parts)

    def row(self, record, source):
        raise AssertionError("per-record path taken")


def test_pair_rows_are_built_by_the_columnar_twin_and_decoded_in_bulk(monkeypatch):
    decoded = []
    monkeypatch.setattr(parallel.json, "loads", lambda text: decoded.append(text) or json.JSONDecoder().decode(text))
    long_pair = {**PAIR, "chosen": PAIR["chosen"] + "x" * (2 << 20)}  # a line longer than pyarrow's default block
    lines = [PAIR_LINE, json.dumps(long_pair).encode()]
    chunk = convert_lines(lines, 1, "f", PairsOnly(), "s", PREFERENCE_SCHEMA_ID, block=b"\n".join(lines))
    assert chunk.table.num_rows == 2 and chunk.rejects == [] and decoded == []  # no line went through json.loads
    bad = convert_lines([PAIR_LINE, b"[1]"], 1, "f", PairsOnly(), "s", PREFERENCE_SCHEMA_ID)
    assert bad.table.num_rows == 1 and reasons(bad) == [("not_an_object", 2)]


class SpyList(list):
    """``sys.meta_path`` stand-in that records where finders are inserted."""

    def __init__(self, items) -> None:
        super().__init__(items)
        self.inserted: list[tuple[int, object]] = []

    def insert(self, index, item) -> None:
        self.inserted.append((index, item))
        super().insert(index, item)


def test_start_worker_refuses_pandas_first_and_only_when_it_is_not_imported(monkeypatch):
    import sys

    threshold = gc.get_threshold()
    try:
        spy = SpyList(sys.meta_path)
        monkeypatch.setattr(sys, "meta_path", spy)
        monkeypatch.delitem(sys.modules, "pandas", raising=False)
        parallel._start_worker()
        assert [(index, type(finder)) for index, finder in spy.inserted] == [(0, parallel._NoPandas)]
        spy.inserted.clear()
        monkeypatch.setitem(sys.modules, "pandas", object())  # a worker forked from a process that has pandas
        parallel._start_worker()
        assert spy.inserted == []
    finally:
        gc.set_threshold(*threshold)


def test_workers_are_forked_where_the_platform_can(tmp_path, monkeypatch):
    import multiprocessing

    path = tmp_path / "in.jsonl"
    path.write_bytes(line("q") + b"\n")
    methods, get_context = [], multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: methods.append(method) or get_context(method))
    chunks = list(convert_file(path, Plain(), source="s", schema_id=PREFERENCE_SCHEMA_ID, workers=1))
    assert chunks[0].table.num_rows == 1
    assert methods == ["fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"]
