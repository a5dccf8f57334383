"""Unit tests of `prefdata.storage.dataset` not covered by test_store.py: the manifest helpers, `SplitWriter`'s shards
and state files, `DatasetWriter`'s bookkeeping, and reading a directory back (`read_manifest`, `load`, `iter_rows`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest
from datasets import Features

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import PREFERENCE_SCHEMA, PREFERENCE_SCHEMA_ID, make_row
from prefdata.storage.dataset import (
    DatasetWriter,
    SplitWriter,
    features_for,
    file_sha256,
    iter_rows,
    load,
    read_manifest,
    redact_options,
)


def row(i: int) -> dict:
    return make_row([{"role": "user", "content": f"question {i}"}], f"good {i}", f"bad {i}", source="test")


def test_features_for_matches_the_arrow_schema():
    assert features_for(PREFERENCE_SCHEMA_ID).arrow_schema == PREFERENCE_SCHEMA


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 10_000  # more than one read block
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_redact_options_drops_credentials_and_makes_paths_json():
    options = {"api_key": "sk-1", "HF_TOKEN": "hf_1", "password": "p", "Authorization": "Bearer x",
               "max_tokens": 64, "tokenizer": "gpt2", "out": Path("/tmp/o"), "files": (Path("a"), "b"), "n": 3}
    assert redact_options(options) == {"max_tokens": 64, "tokenizer": "gpt2", "out": "/tmp/o", "files": ["a", "b"],
                                       "n": 3}


def test_split_writer_names_shards_and_writes_datasets_state_files(tmp_path):
    writer = SplitWriter(tmp_path / "train", "train", PREFERENCE_SCHEMA_ID, max_shard_bytes=1 << 30)
    for i in range(3):
        writer.write(row(i))
    writer.write_table(pa.Table.from_pylist([row(3), row(4)], schema=PREFERENCE_SCHEMA))
    info = writer.close()
    shard = tmp_path / "train" / "data-00000-of-00001.arrow"
    assert info["rows"] == 5
    assert info["shards"] == [{"file": shard.name, "rows": 5, "bytes": shard.stat().st_size,
                               "sha256": hashlib.sha256(shard.read_bytes()).hexdigest()}]
    assert info["fingerprint"] == hashlib.sha256(info["shards"][0]["sha256"].encode()).hexdigest()[:16]
    state = json.loads((tmp_path / "train" / "state.json").read_text())
    assert (state["_data_files"], state["_fingerprint"], state["_split"]) == (
        [{"filename": shard.name}], info["fingerprint"], "train")
    recorded = json.loads((tmp_path / "train" / "dataset_info.json").read_text())["features"]
    assert Features.from_dict(recorded) == features_for(PREFERENCE_SCHEMA_ID)


def test_split_writer_refuses_an_existing_directory(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileExistsError):
        SplitWriter(tmp_path / "train", "train", PREFERENCE_SCHEMA_ID, max_shard_bytes=1 << 30)


def test_an_empty_split_still_gets_one_empty_shard(tmp_path):
    with DatasetWriter(tmp_path / "ds", command="test") as writer:
        writer.split("eval")
    assert writer.manifest["splits"]["eval"]["rows"] == 0
    assert [s["file"] for s in writer.manifest["splits"]["eval"]["shards"]] == ["data-00000-of-00001.arrow"]
    assert load(tmp_path / "ds")["eval"].num_rows == 0


def test_dataset_writer_records_inputs_warnings_extra_and_reason_counts(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a": 1}\n')
    with DatasetWriter(tmp_path / "ds", command="import", options={"token": "t", "seed": 1}) as writer:
        writer.add_input(source)
        writer.warn("something odd")
        writer.extra["detected"] = {"format": "trl"}
        writer.count_in(3)
        writer.write(row(0))
        writer.quarantine("bad_json", "invalid JSON", "{", file="in.jsonl", line=2, index=1)
        writer.quarantine("bad_json", "invalid JSON", "[", file="in.jsonl")
        assert writer.quarantined == 2
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["inputs"] == [{"path": str(source), "sha256": hashlib.sha256(b'{"a": 1}\n').hexdigest(),
                                   "bytes": 9}]
    assert (manifest["warnings"], manifest["detected"], manifest["options"]) == (["something odd"],
                                                                                 {"format": "trl"}, {"seed": 1})
    assert manifest["counts"] == {"records_in": 3, "rows_out": 1, "quarantined": 2,
                                  "quarantined_by_reason": {"bad_json": 2}}
    first = json.loads((tmp_path / "ds" / "quarantine.jsonl").read_text().splitlines()[0])
    assert list(first) == ["file", "line", "index", "reason", "message", "record"]


def test_records_out_are_counted_by_the_caller_when_one_record_makes_several_rows(tmp_path):
    with DatasetWriter(tmp_path / "ds", command="split", count_rows_out=False) as writer:
        writer.count_in(2)
        for i in range(3):
            writer.write(row(i), "sft_train")
        writer.count_out(1)
        writer.quarantine("duplicate", "same id", None)
    assert writer.manifest["counts"] == {"records_in": 2, "rows_out": 3, "records_out": 1, "quarantined": 1,
                                         "quarantined_by_reason": {"duplicate": 1}}


def test_a_lone_surrogate_in_a_quarantined_record_stays_valid_utf8(tmp_path):
    with DatasetWriter(tmp_path / "ds", command="test") as writer:
        writer.count_in()
        writer.quarantine("bad_text", "lone surrogate", {"text": "a\ud800b"})
    raw = (tmp_path / "ds" / "quarantine.jsonl").read_bytes()
    assert json.loads(raw.decode("utf-8"))["record"] == {"text": "a\ud800b"}


def test_abort_removes_the_temporary_directory(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", command="test")
    writer.write(row(0))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_read_manifest_names_what_is_wrong(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrefdataError, match="is a file, not a dataset directory"):
        read_manifest(tmp_path / "file")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "prefdata.json").write_text("{not json")
    with pytest.raises(PrefdataError, match="unreadable manifest") as caught:
        read_manifest(broken)
    assert caught.value.file == str(broken / "prefdata.json")


def test_iter_rows_streams_every_split_or_one_in_stored_order(tmp_path):
    with DatasetWriter(tmp_path / "ds", command="test") as writer:
        for i in range(5):
            writer.count_in()
            writer.write(row(i), "b_split" if i % 2 else "a_split")
    pairs = [(split, r["chosen"]) for split, r in iter_rows(tmp_path / "ds")]
    assert pairs == [("a_split", "good 0"), ("a_split", "good 2"), ("a_split", "good 4"), ("b_split", "good 1"),
                     ("b_split", "good 3")]
    assert [r["id"] for _, r in iter_rows(tmp_path / "ds", "b_split")] == [row(1)["id"], row(3)["id"]]
