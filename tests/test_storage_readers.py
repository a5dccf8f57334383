"""Unit tests of `prefdata.storage.readers` not covered by test_readers.py: input checks, container names, the JSON
array reader's file-level errors and byte limit, the per-record limit of JSON Lines, Parquet and CSV edge cases."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.storage import json_array, readers
from prefdata.storage.readers import BadRecord, Record, check_input_file, container_of, iter_records, open_binary


def error_of(path, **kwargs) -> PrefdataError:
    with pytest.raises(PrefdataError) as caught:
        list(iter_records(path, **kwargs))
    return caught.value


def test_check_input_file_refuses_what_cannot_be_data(tmp_path):
    with pytest.raises(PrefdataError, match="no such file"):
        check_input_file(tmp_path / "missing.jsonl")
    with pytest.raises(PrefdataError, match="is a directory"):
        check_input_file(tmp_path)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(PrefdataError, match="is empty"):
        check_input_file(tmp_path / "empty.jsonl")
    pointer = tmp_path / "data.jsonl"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 1234\n")
    with pytest.raises(PrefdataError, match=r"Git LFS pointer \(to 1234 bytes\)"):
        check_input_file(pointer)
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n')
    assert check_input_file(str(good)) == good


def test_is_gzip_looks_at_the_bytes_not_the_name(tmp_path):
    (tmp_path / "plain.gz").write_bytes(b'{"a": 1}\n')
    (tmp_path / "packed.jsonl").write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert (readers.is_gzip(tmp_path / "plain.gz"), readers.is_gzip(tmp_path / "packed.jsonl")) == (False, True)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("a.json.gz", "json"), ("a.tsv", "csv"), ("a.csv.gz", "csv"),
     ("a.parquet", "parquet"), ("notes.md", "txt"), ("a.txt", "txt"), ("data", "json"), ("a.gz", "json")],
)
def test_container_of_reads_the_name_through_gz(name, kind):
    assert container_of(name) == kind


def test_open_binary_turns_corrupt_gzip_into_one_line_error(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-20])
    with pytest.raises(PrefdataError, match="corrupt or truncated gzip") as caught, open_binary(path) as stream:
        stream.read()
    assert caught.value.file == str(path) and "\n" not in str(caught.value)


def test_empty_after_decompression_and_unknown_container(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b""))
    assert "empty after decompression" in error_of(path).message
    other = tmp_path / "a.jsonl"
    other.write_text('{"a": 1}\n')
    assert "unknown container 'xml'" in error_of(other, container="xml").message


def test_json_file_holding_json_lines_is_read_as_json_lines(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert [r.value for r in iter_records(path)] == [{"a": 1}, {"a": 2}]


def test_json_array_elements_carry_index_and_start_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  3,\n  {"b":\n    [1, 2.5]}\n]\n')
    items = list(iter_records(path))
    assert [(type(i).__name__, i.index, i.line) for i in items] == [("Record", 0, 2), ("BadRecord", 1, 3),
                                                                   ("Record", 2, 4)]
    assert items[1].reason == "not_an_object" and items[1].raw == 3
    assert items[2].value == {"b": [1, 2.5]}


def test_empty_json_array_has_no_records(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(" [ ] \n")
    assert list(iter_records(path)) == []


def test_number_split_across_read_chunks_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(json_array, "_CHUNK", 5)
    path = tmp_path / "a.json"
    path.write_text('[{"n": 1234567890123}, 7]')
    items = list(iter_records(path))
    assert items[0].value == {"n": 1234567890123} and items[1].raw == 7


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ('"just a string"', "starts with '\"'; expected a JSON array", 1),
        ("\n\n   ", "nothing but white space", 3),
        ('[\n{"a": 1},\n{"a": 2', "truncated or invalid JSON", 3),
        ('[{"a": 1} {"a": 2}]', "expected ',' or ']', found '{'", 1),
        ('[{"a": 1},\n', "truncated or invalid JSON", 2),
        ('[{"a": 1}]\n]', "unexpected data after the closing ']'", 2),
    ],
)
def test_json_array_file_defects_name_their_line(tmp_path, content, message, line):
    path = tmp_path / "a.json"
    path.write_text(content)
    error = error_of(path, container="json")
    assert message in error.message and error.line == line and error.file == str(path)


def test_json_array_element_over_the_byte_limit_stops_the_read(tmp_path, monkeypatch):
    monkeypatch.setattr(json_array, "_CHUNK", 64)  # the limit is checked as the buffer grows, chunk by chunk
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"a": "small"}, {"a": "x" * 5000}]))
    items = []
    with pytest.raises(PrefdataError, match="element 1 is larger than 1000 bytes"):
        for item in iter_records(path, max_record_bytes=1000):
            items.append(item)
    assert [i.value for i in items] == [{"a": "small"}]


def test_jsonl_line_over_the_byte_limit_is_one_bad_record(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"a": "x" * 100}) + "\n" + json.dumps({"a": "y"}) + "\n")
    items = list(iter_records(path, max_record_bytes=50))
    assert isinstance(items[0], BadRecord) and (items[0].reason, items[0].line) == ("record_too_large", 1)
    assert isinstance(items[1], Record) and items[1].value == {"a": "y"}


def test_parquet_rows_are_records_without_lines(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"prompt": ["p1", "p2"], "n": [1, None]}), path)
    items = list(iter_records(path))
    assert [(i.index, i.line, i.value) for i in items] == [(0, None, {"prompt": "p1", "n": 1}),
                                                           (1, None, {"prompt": "p2", "n": None})]
    fake = tmp_path / "b.parquet"
    fake.write_text("not parquet at all")
    assert "not a readable Parquet file" in error_of(fake).message


def test_tsv_is_tab_separated_and_an_empty_csv_header_is_refused(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("prompt\tchosen\nhello, world\thi\n")
    assert [r.value for r in iter_records(tsv)] == [{"prompt": "hello, world", "chosen": "hi"}]
    blank = tmp_path / "b.csv"
    blank.write_text(",\n1,2\n")
    error = error_of(blank)
    assert ("CSV header is empty" in error.message, error.line) == (True, 1)
