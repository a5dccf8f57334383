"""The dataset directory (design §2): layout, manifest, quarantine, reconciliation, atomicity, determinism."""

from __future__ import annotations

import json
from collections import Counter

import datasets
import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import PREFERENCE_SCHEMA, make_row
from prefdata.storage.dataset import DatasetWriter, load, read_manifest


def _rows(n: int, tag: str = ""):
    for i in range(n):
        yield make_row([{"role": "user", "content": f"question {tag}{i} — ünïcödé 问题"}], f"good {i}", f"bad {i}",
                       source="test")


def _write(out, n=50, overwrite=False):
    with DatasetWriter(out, command="test", options={"api_key": "sk-secret", "n": n}, overwrite=overwrite) as w:
        for row in _rows(n):
            w.count_in()
            w.write(row, "train")
        w.count_in()
        w.quarantine("bad_json", "invalid JSON", "{oops", file="in.jsonl", line=7)
    return w.manifest


def test_directory_loads_with_plain_datasets_and_manifest_reconciles(tmp_path):
    out = tmp_path / "ds"
    manifest = _write(out)
    plain = datasets.load_from_disk(str(out))
    assert plain["train"].num_rows == 50
    assert plain["train"].data.schema.names == PREFERENCE_SCHEMA.names
    assert load(out)["train"][3]["prompt"][0]["content"].endswith("问题")
    assert manifest == read_manifest(out)
    counts = manifest["counts"]
    assert counts["records_in"] == counts["rows_out"] + counts["quarantined"] == 51
    assert counts["quarantined_by_reason"] == {"bad_json": 1}
    line = json.loads((out / "quarantine.jsonl").read_text(encoding="utf-8"))
    assert line == {"file": "in.jsonl", "line": 7, "reason": "bad_json", "message": "invalid JSON", "record": "{oops"}


# Every reason code a job can quarantine with (readers, formats, import, SHP download, split): each must get its line.
REASONS = ("bad_json", "not_an_object", "schema_violation", "missing_field", "bad_role", "bad_unicode", "empty_prompt",
           "empty_reply", "empty_text", "identical_pair", "malformed_markers", "diverges_before_assistant",
           "prompt_not_ending_with_user", "wrong_schema", "bad_label", "label_conflict", "tie", "low_score_ratio",
           "over_post_cap", "duplicate", "near_duplicate", "contaminated", "phase_disabled", "unusable_in_phase")


def test_every_quarantined_record_has_its_line_whatever_the_reason(tmp_path):
    reasons = [*REASONS, "label_conflict", "tie"]  # some twice: one line per record, not per reason
    out = tmp_path / "ds"
    with DatasetWriter(out, command="test") as w:
        for i, reason in enumerate(reasons):
            w.count_in()
            w.quarantine(reason, f"message {i}", {"n": i, "text": "ünïcödé 问题"}, file="in.jsonl", line=i + 1)
    lines = [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [{"file": "in.jsonl", "line": i + 1, "reason": reason, "message": f"message {i}",
                      "record": {"n": i, "text": "ünïcödé 问题"}} for i, reason in enumerate(reasons)]
    counts = w.manifest["counts"]
    assert counts["quarantined_by_reason"] == dict(Counter(reasons))
    assert counts["records_in"] == counts["quarantined"] == len(reasons) and counts["rows_out"] == 0


def test_secrets_never_reach_the_manifest(tmp_path):
    _write(tmp_path / "ds")
    assert "sk-secret" not in (tmp_path / "ds" / "prefdata.json").read_text()


def test_same_input_gives_byte_identical_directories(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_existing_output_needs_overwrite_and_rerun_is_idempotent(tmp_path):
    out = tmp_path / "ds"
    _write(out)
    before = (out / "train" / "data-00000-of-00001.arrow").read_bytes()
    with pytest.raises(PrefdataError, match="--overwrite"):
        _write(out)
    _write(out, overwrite=True)
    assert (out / "train" / "data-00000-of-00001.arrow").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    victim = tmp_path / "home"
    victim.mkdir()
    (victim / "notes.txt").write_text("keep me")
    with pytest.raises(PrefdataError, match="not a prefdata dataset"):
        _write(victim, overwrite=True)
    assert (victim / "notes.txt").exists()


def test_a_crash_leaves_no_half_dataset(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(ValueError), DatasetWriter(out, command="test") as w:
        w.count_in()
        w.write(next(_rows(1)))
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_counts_that_do_not_reconcile_are_never_published(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="reconcile"), DatasetWriter(out, command="test") as w:
        w.count_in(2)
        w.write(next(_rows(1)))
    assert list(tmp_path.iterdir()) == []


def test_large_split_is_sharded_in_save_to_disk_layout(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, command="test", max_shard_bytes=64 * 1024) as w:
        for row in _rows(10_000):
            w.count_in()
            w.write(row, "train")
    shards = w.manifest["splits"]["train"]["shards"]
    assert len(shards) > 1
    assert [s["file"] for s in shards] == [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    assert sum(s["rows"] for s in shards) == 10_000
    loaded = datasets.load_from_disk(str(out))["train"]
    assert loaded.num_rows == 10_000 and loaded[9999]["chosen"] == "good 9999"


def test_load_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(PrefdataError, match="no such directory"):
        load(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(PrefdataError, match="prefdata.json"):
        load(tmp_path / "plain")
