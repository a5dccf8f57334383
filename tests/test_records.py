"""The one record loop: the same defective record gives the same quarantine line and the same ``--on-error fail``
message whichever verb found it; rejects, counters and the fail-or-quarantine decision behave as documented."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import pytest
from support import run_cli

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.pipeline.records import ParsedRow, RecordLoop, Reject, parse_records
from prefdata.storage.dataset import DatasetWriter, read_manifest
from prefdata.storage.readers import BadRecord, Record

GOOD = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."}
DEFECTS = [
    {"chosen": "\n\nHuman: Hi?\n\nAssistant: ", "rejected": "\n\nHuman: Hi?\n\nAssistant: No."},  # empty reply
    {"chosen": GOOD["chosen"], "rejected": GOOD["chosen"]},  # identical pair
    {"chosen": "\n\nHuman: A?\n\nAssistant: x", "rejected": "\n\nHuman: B?\n\nAssistant: y"},  # diverge early
    {"chosen": GOOD["chosen"]},  # no rejected
]


def _hub_copy(tmp_path: Path) -> Path:
    """An HH-RLHF layout whose one file holds good records, each defect, and a line that is not JSON."""
    path = tmp_path / "hub" / "harmless-base" / "train.jsonl.gz"
    path.parent.mkdir(parents=True)
    lines = [json.dumps(GOOD)] + [json.dumps(d) for d in DEFECTS] + ['{"chosen": "x"', json.dumps(GOOD)]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def test_same_defects_same_quarantine_lines_through_import_and_download(tmp_path, capsys):
    path = _hub_copy(tmp_path)
    hub = path.parent.parent
    runs = {
        "import": ["import", path, "--format", "trl-implicit", "--out", tmp_path / "import"],
        "hh-rlhf": ["download", "hh-rlhf", "--from", hub, "--subset", "harmless-base", "--out", tmp_path / "hh-rlhf"],
        "hub": ["download", "someone/pairs", "--from", hub, "--format", "trl-implicit", "--out", tmp_path / "hub-out"],
    }
    lines = {}
    for name, argv in runs.items():
        code, _, err = run_cli(capsys, *argv, "--quiet")
        assert code == 0, err
        lines[name] = (tmp_path / argv[-1]).joinpath("quarantine.jsonl").read_bytes()
    assert lines["import"] == lines["hh-rlhf"] == lines["hub"]
    entries = _quarantine(tmp_path / "import")
    assert [(e["file"], e["line"], e["record"]) for e in entries] == (
        [(str(path), n + 2, d) for n, d in enumerate(DEFECTS)] + [(str(path), 6, '{"chosen": "x"')])
    reasons = [e["reason"] for e in entries]
    assert reasons == ["empty_reply", "identical_pair", "diverges_before_assistant", "missing_field", "bad_json"]
    assert entries[0]["message"].startswith("chosen: ")  # the field first, as download always wrote it
    assert entries[3]["message"] == "rejected: required key is missing"


def test_fail_mode_names_the_same_file_line_and_field_through_import_and_download(tmp_path, capsys):
    path = _hub_copy(tmp_path)
    messages = []
    for argv in (["import", path, "--format", "trl-implicit", "--out", tmp_path / "a"],
                 ["download", "hh-rlhf", "--from", path.parent.parent, "--out", tmp_path / "b"]):
        code, _, err = run_cli(capsys, *argv, "--quiet", "--on-error", "fail")
        assert code != 0 and "Traceback" not in err and not (tmp_path / argv[-1]).exists()
        messages.append(err.strip().splitlines()[-1])
    assert messages[0] == messages[1]
    assert f"{path}:2: chosen: " in messages[0] and "(empty_reply)" in messages[0]


def test_manifest_counts_per_file(tmp_path, capsys):
    path = _hub_copy(tmp_path)
    code, _, err = run_cli(capsys, "download", "hh-rlhf", "--from", path.parent.parent, "--out", tmp_path / "o",
                           "--quiet")
    assert code == 0, err
    files = read_manifest(tmp_path / "o")["files"]
    assert files == {str(path): {"records": 7, "rows": 2, "quarantined": 5, "quarantined_by_reason": {
        "bad_json": 1, "diverges_before_assistant": 1, "empty_reply": 1, "identical_pair": 1, "missing_field": 1}}}


def test_reject_text_error_and_pickling():
    reject = Reject.of(RowError("empty_reply", "the reply is empty", "chosen"), {"chosen": ""}, file="f.jsonl",
                       line=3, index=2)
    assert reject.text == "chosen: the reply is empty"
    assert str(reject.error()) == "f.jsonl:3: chosen: the reply is empty (empty_reply)"
    assert str(reject.at(line=None).error()) == "f.jsonl[2]: chosen: the reply is empty (empty_reply)"
    assert Reject("bad_json", "invalid JSON", "{").text == "invalid JSON"
    assert pickle.loads(pickle.dumps(reject)) == reject  # workers return rejects


def test_parse_records_turns_bad_records_and_row_errors_into_rejects():
    def parse(value):
        if not value.get("ok"):
            raise RowError("schema_violation", "not ok", "ok")
        return {"id": value["id"]}

    items = [Record("f", 0, 1, {"ok": True, "id": 1}), BadRecord("f", 1, 2, "bad_json", "invalid JSON", "{"),
             Record("f", 2, 3, {"ok": False})]
    assert list(parse_records(items, parse)) == [
        ParsedRow("f", 0, 1, {"id": 1}),
        Reject("bad_json", "invalid JSON", "{", file="f", line=2, index=1),
        Reject("schema_violation", "not ok", {"ok": False}, file="f", line=3, index=2, field="ok"),
    ]


def test_loop_counts_and_quarantines_line_else_index(tmp_path):
    with DatasetWriter(tmp_path / "o", command="test") as writer:
        loop = RecordLoop(writer)
        loop.describe("a", format="x")
        loop.reject(Reject("bad_json", "invalid JSON", "{", file="a", line=4, index=3))
        loop.quarantine(Reject("near_duplicate", "too close", {"p": 1}, file="b", index=7))
        loop.finish()
    assert _quarantine(tmp_path / "o") == [
        {"file": "a", "line": 4, "reason": "bad_json", "message": "invalid JSON", "record": "{"},
        {"file": "b", "index": 7, "reason": "near_duplicate", "message": "too close", "record": {"p": 1}},
    ]
    manifest = read_manifest(tmp_path / "o")
    assert manifest["counts"]["records_in"] == 2 and manifest["counts"]["quarantined"] == 2
    assert manifest["files"] == {
        "a": {"format": "x", "records": 1, "rows": 0, "quarantined": 1, "quarantined_by_reason": {"bad_json": 1}},
        "b": {"records": 1, "rows": 0, "quarantined": 1, "quarantined_by_reason": {"near_duplicate": 1}},
    }


def test_fail_mode_raises_for_defects_but_not_for_filters(tmp_path):
    failing = pytest.raises(PrefdataError, match=r"^a:4: invalid JSON \(bad_json\)$")
    with failing, DatasetWriter(tmp_path / "o", command="test") as writer:
        loop = RecordLoop(writer, on_error="fail")
        loop.quarantine(Reject("low_score_ratio", "score ratio 1.5 < 2", {}, file="a", line=3))  # a filter
        loop.reject(Reject("bad_json", "invalid JSON", "{", file="a", line=4))
    assert not (tmp_path / "o").exists()
    with pytest.raises(PrefdataError, match="--on-error: unknown value 'skip'"):
        RecordLoop(DatasetWriter(tmp_path / "p", command="test"), on_error="skip")
