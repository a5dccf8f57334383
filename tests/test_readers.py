"""The streaming reader: record positions, encodings and line ends, and file-level defects named with their line."""

from __future__ import annotations

import gzip
import json

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.storage import json_array
from prefdata.storage.readers import BadRecord, Record, iter_records

CJK = "你好，世界！🙂 naïve café"


def values(path, **kwargs):
    return [r.value for r in iter_records(path, **kwargs) if isinstance(r, Record)]


def test_jsonl_records_carry_file_line_and_index(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\nnot json\n[1]\n', encoding="utf-8")
    items = list(iter_records(path))
    assert [(type(i).__name__, i.index, i.line) for i in items] == [
        ("Record", 0, 1), ("Record", 1, 3), ("BadRecord", 2, 4), ("BadRecord", 3, 5)]
    assert [i.reason for i in items if isinstance(i, BadRecord)] == ["bad_json", "not_an_object"]


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv"])
def test_bom_and_crlf_are_read_as_if_absent(tmp_path, suffix):
    rows = [{"a": CJK, "b": "x"}, {"a": "line two", "b": "y"}]
    if suffix == "jsonl":
        text = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    elif suffix == "json":
        text = "[\r\n" + ",\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n]\r\n"
    else:
        text = "a,b\r\n" + "".join(f"{r['a']},{r['b']}\r\n" for r in rows)
    path = tmp_path / f"bom.{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert values(path) == rows


def test_multibyte_characters_split_across_read_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(json_array, "_CHUNK", 7)  # every character straddles some chunk boundary
    rows = [{"t": CJK * n} for n in range(1, 6)]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert values(path) == rows


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("a.csv", b"prompt,chosen\nq,a\nq2,\xff\n", 3),
        ("a.json", b'[\n{"a": "\xe4\xbd\xa0"},\n{"a": "\xff"}\n]', 3),
        ("a.txt", b"first block\n\nsecond \xc3\n", 3),
    ],
)
def test_invalid_utf8_names_the_line_it_is_on(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PrefdataError) as e:
        list(iter_records(path))
    assert (e.value.line, "invalid UTF-8" in e.value.message) == (line, True)


def test_invalid_utf8_in_jsonl_is_one_bad_record(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n')
    items = list(iter_records(path))
    assert [getattr(i, "reason", None) for i in items] == [None, "bad_utf8", None]


def test_text_blocks_are_separated_by_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("第一段\n续\r\n\r\n\n第二段\n", encoding="utf-8")
    items = list(iter_records(path))
    assert [(i.value["text"], i.line) for i in items] == [("第一段\n续", 1), ("第二段", 5)]


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert values(path) == [{"a": 1}]


def test_csv_empty_cell_is_null_and_ragged_row_is_bad(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,\n1,2,3\n", encoding="utf-8")
    items = list(iter_records(path))
    assert items[0].value == {"a": "1", "b": None}
    assert (items[1].reason, items[1].line) == ("bad_csv", 3)
