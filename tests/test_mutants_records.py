"""Kills the surviving mutants of ``prefdata/pipeline/records.py`` (build/mutation/prefdata_pipeline_records.py.md).

Per-file counters in the manifest's ``files`` block, from inputs whose counts are worked out by hand, and the exact
``--on-error`` refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from support import run_cli

from prefdata.contract.errors import PrefdataError
from prefdata.formats import hh
from prefdata.pipeline.records import RecordLoop, Reject, check_on_error
from prefdata.storage.dataset import DatasetWriter, read_manifest


def _pair(question: str, good: str, bad: str) -> dict:
    return {"chosen": f"\n\nHuman: {question}\n\nAssistant: {good}",
            "rejected": f"\n\nHuman: {question}\n\nAssistant: {bad}"}


GOOD = [_pair("Capital of France?", "Paris.", "Rome."), _pair("2+2?", "4", "5"),
        _pair("Colour of the sky?", "Blue.", "Green."), _pair("Largest planet?", "Jupiter.", "Mars.")]
EMPTY_REPLY = [_pair("Say hi.", "", "Hi."), _pair("Name a fruit.", "", "Apple.")]
IDENTICAL = [_pair("Same?", "Yes.", "Yes."), _pair("Again?", "No.", "No."), _pair("Third?", "Ok.", "Ok.")]


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_import_counts_rows_and_rejects_per_file(tmp_path, capsys):
    # row_8 (records -= 1), row_10 (rows = 1), quarantine_23 (by-reason count = 1).
    records = [GOOD[0], EMPTY_REPLY[0], GOOD[1], IDENTICAL[0], IDENTICAL[1], GOOD[2], EMPTY_REPLY[1], IDENTICAL[2],
               GOOD[3]]
    path = _write(tmp_path / "in" / "pairs.jsonl", records)
    code, _, err = run_cli(capsys, "import", path, "--format", "trl-implicit", "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    counts = read_manifest(tmp_path / "out")["files"][str(path)]
    assert {k: counts[k] for k in ("records", "rows", "quarantined", "quarantined_by_reason")} == {
        "records": 9, "rows": 4, "quarantined": 5,
        "quarantined_by_reason": {"empty_reply": 2, "identical_pair": 3}}


def test_loop_counts_several_rows_and_rejects_per_file(tmp_path):
    # The same counters through RecordLoop directly, two files.
    rows = [hh.hh_row(r, "t") for r in GOOD]
    with DatasetWriter(tmp_path / "o", command="test") as writer:
        loop = RecordLoop(writer)
        for row in rows[:3]:
            loop.row(row, "train", "a")
        loop.row(rows[3], "train", "b")
        for n in range(3):
            loop.quarantine(Reject("empty_reply", "the reply is empty", {}, file="a", line=10 + n, field="chosen"))
        loop.quarantine(Reject("identical_pair", "same", {}, file="a", line=20))
        loop.quarantine(Reject("identical_pair", "same", {}, file="a", line=21))
        loop.finish()
    assert read_manifest(tmp_path / "o")["files"] == {
        "a": {"records": 8, "rows": 3, "quarantined": 5,
              "quarantined_by_reason": {"empty_reply": 3, "identical_pair": 2}},
        "b": {"records": 1, "rows": 1, "quarantined": 0, "quarantined_by_reason": {}},
    }


def test_loop_table_blocks_add_up_per_file(tmp_path):
    # table_8 (rows = num_rows): two Arrow blocks of 2 and 1 rows for one file.
    rows = [hh.hh_row(r, "t") for r in GOOD[:3]]
    with DatasetWriter(tmp_path / "o", command="test") as writer:
        loop = RecordLoop(writer)
        schema = writer.split("train").schema
        loop.table(pa.Table.from_pylist(rows[:2], schema=schema), "train", "f")
        loop.table(pa.Table.from_pylist(rows[2:], schema=schema), "train", "f")
        loop.finish()
    assert read_manifest(tmp_path / "o")["files"] == {
        "f": {"records": 3, "rows": 3, "quarantined": 0, "quarantined_by_reason": {}}}


def test_unknown_on_error_value_names_the_choices(tmp_path):
    # check_on_error_7: the separator between the choices.
    assert check_on_error("fail") == "fail" and check_on_error("quarantine") == "quarantine"
    with pytest.raises(PrefdataError) as info:
        check_on_error("skip")
    assert info.value.message == "unknown value 'skip'; choose one of quarantine, fail"
    assert info.value.field == "--on-error"
    assert str(info.value) == "--on-error: unknown value 'skip'; choose one of quarantine, fail"
    with pytest.raises(PrefdataError) as info:
        RecordLoop(DatasetWriter(tmp_path / "p", command="test"), on_error="ignore")
    assert str(info.value) == "--on-error: unknown value 'ignore'; choose one of quarantine, fail"
