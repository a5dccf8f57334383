"""`prefdata import` end to end: through the CLI, reloaded with `datasets`, ids recomputed, on real HH-RLHF data."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import load_from_disk
from support import run_cli

from prefdata.contract.resources import sample_path
from prefdata.formats import detect_format
from prefdata.jobs.importer import ParsedRow, Reject, default_source, import_files, iter_parsed
from prefdata.storage.dataset import read_manifest

ZH = [
    {"prompt": "用一句话解释什么是机器学习。", "chosen": "机器学习是让计算机从数据中学习规律的方法。", "rejected": "不知道。"},
    {"prompt": "推荐一本适合初学者的书。", "chosen": "可以从《小王子》开始，语言简单又有深度。", "rejected": "随便。"},
    {"prompt": "Café naïve — ¿qué tal? 🙂", "chosen": "Très bien, merci ! ✨", "rejected": "…"},
]


def run(capsys, *argv) -> tuple[int, str, str]:
    return run_cli(capsys, "import", *argv)


def expected_id(prompt: list[dict], chosen: str | None, rejected: str | None) -> str:
    """The contract's id, computed here without prefdata: sha256 of the canonical JSON, first 16 hex chars, each
    message with only its set keys (`datasets` shows unset tool fields as nulls)."""
    prompt = [{key: value for key, value in message.items() if value is not None} for message in prompt]
    canonical = json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*.arrow"))}


def test_end_to_end_through_the_cli(tmp_path, capsys):
    path = tmp_path / "pairs.jsonl"
    records = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": f"Wrong {i}."} for i in range(20)]
    records.insert(5, {"prompt": "Same?", "chosen": "Same.", "rejected": "Same."})
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, path, "--out", out)
    assert code == 0, stderr
    assert f"{path}: format trl-standard (detected" in stderr
    assert stdout.strip().splitlines() == [
        f"21 records in -> 20 rows (train 20) in {out}; quarantined 1 (identical_pair 1)"]

    dataset = load_from_disk(str(out))["train"]
    good = [r for r in records if r["chosen"] != r["rejected"]]
    assert dataset.num_rows == len(good)
    for row, record in zip(dataset, good):
        # datasets shows a message's unset tool fields as nulls (prefdata's own readers leave them out)
        prompt = [{"role": "user", "content": record["prompt"], "tool_calls": None, "tool_call_id": None, "name": None}]
        assert row["prompt"] == prompt and row["chosen"] == record["chosen"] and row["rejected"] == record["rejected"]
        assert row["id"] == expected_id(prompt, record["chosen"], record["rejected"])
        assert row["source"] == "custom/pairs"
    manifest = read_manifest(out)
    assert manifest["schema"] == "prefdata.preference/2" and manifest["command"] == "import"
    assert manifest["counts"] == {"records_in": 21, "rows_out": 20, "quarantined": 1,
                                  "quarantined_by_reason": {"identical_pair": 1}}
    assert manifest["inputs"] == [{"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                   "bytes": path.stat().st_size}]
    assert manifest["splits"]["train"]["rows"] == 20
    assert manifest["files"][str(path)] == {"format": "trl-standard", "source": "custom/pairs", "records": 21,
                                            "rows": 20, "quarantined": 1,
                                            "quarantined_by_reason": {"identical_pair": 1}}
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["reason"], q["record"]) for q in quarantined] == [(6, "identical_pair", records[5])]


def _classify_hh(chosen: str, rejected: str) -> str:
    """Independent reading of the contract for one HH record: which reason code, or "ok"."""
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind("\n\nAssistant:")
    if cut < 0:
        return "diverges_before_assistant"
    prompt_text = chosen[:cut]
    replies = [side[cut + len("\n\nAssistant:"):] for side in (chosen, rejected)]
    loose = re.compile(r"(?<!\n\n)(?:^|(?<=\s))(?:Human|Assistant):")  # a marker without its blank line
    turns = re.split(r"\n\n(?:Human|Assistant):", prompt_text)
    if any(loose.search(turn) for turn in turns) or any(loose.search(r.split("\n\nHuman:")[0]) for r in replies):
        return "malformed_markers"
    if any(not r.strip() for r in replies):
        return "empty_reply"
    if replies[0].removeprefix(" ") == replies[1].removeprefix(" "):
        return "identical_pair"
    return "ok"


def test_real_hh_harmless_test_through_trl_implicit(tmp_path, capsys, hh_harmless_test):
    with gzip.open(hh_harmless_test, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    expected = Counter(_classify_hh(r["chosen"], r["rejected"]) for r in records)
    assert len(records) == 2312 and detect_format(hh_harmless_test) == "trl-implicit"

    out = tmp_path / "hh"
    code, _, stderr = run(capsys, hh_harmless_test, "--out", out, "--format", "trl-implicit", "--quiet")
    assert code == 0, stderr
    counts = read_manifest(out)["counts"]
    assert counts["records_in"] == 2312 == counts["rows_out"] + counts["quarantined"]
    assert counts["rows_out"] == expected.pop("ok")
    assert counts["quarantined_by_reason"] == dict(expected)
    dataset = load_from_disk(str(out))["train"]
    assert dataset.num_rows == counts["rows_out"]
    for row in dataset.select(range(0, dataset.num_rows, 97)):
        assert row["id"] == expected_id(row["prompt"], row["chosen"], row["rejected"])
        assert row["prompt"][-1]["role"] == "user" and row["source"] == "custom/test"
    quarantined = (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(quarantined) == counts["quarantined"]
    for line in quarantined:
        entry = json.loads(line)
        source_record = records[entry["line"] - 1]
        assert entry["record"] == source_record
        assert _classify_hh(source_record["chosen"], source_record["rejected"]) == entry["reason"]


def test_same_input_gives_byte_identical_shards_and_overwrite_is_idempotent(tmp_path, capsys):
    path = sample_path()
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(capsys, path, "--out", first, "-q")[0] == 0
    assert run(capsys, path, "--out", second, "-q")[0] == 0
    assert shard_bytes(first) == shard_bytes(second) and shard_bytes(first)
    before = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    assert run(capsys, path, "--out", first, "-q", "--overwrite")[0] == 0
    after = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    assert before == after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary or old siblings left


def test_bundled_sample_and_its_deliberate_defects(tmp_path, capsys):
    out = tmp_path / "sample"
    code, stdout, stderr = run(capsys, "--sample", "--out", out, "-q")
    assert code == 0, stderr
    lines = sample_path().read_text(encoding="utf-8").splitlines()
    planted = {"bad_json": 1, "empty_reply": 1, "identical_pair": 1, "malformed_markers": 1}  # by make_sample.py

    def parses(line: str) -> bool:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            return False
        return True

    assert sum(not parses(line) for line in lines) == planted["bad_json"]
    expected_rows = len(lines) - sum(planted.values())
    counts = read_manifest(out)["counts"]
    assert counts["records_in"] == len(lines) and 190 <= len(lines) <= 220
    assert counts["quarantined_by_reason"] == planted
    rows = load_from_disk(str(out))["train"]
    assert rows.num_rows == expected_rows
    assert max(len(p) for p in rows["prompt"]) >= 5  # multi-turn conversations are in there
    assert any("你好" in p[0]["content"] or "绿茶" in p[0]["content"] for p in rows["prompt"])
    assert f"{len(lines)} records in -> {expected_rows} rows (train {expected_rows})" in stdout


def test_non_ascii_round_trips_byte_for_byte_in_every_container(tmp_path, capsys):
    files = []
    jsonl_path = tmp_path / "zh.jsonl.gz"
    jsonl_path.write_bytes(gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ZH).encode()))
    files.append(jsonl_path)
    array_path = tmp_path / "zh_escaped.json"
    array_path.write_text(json.dumps(ZH, ensure_ascii=True, indent=1), encoding="utf-8")  # \uXXXX escapes
    files.append(array_path)
    csv_path = tmp_path / "zh.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows(ZH)
    files.append(csv_path)
    for path in files:
        out = tmp_path / f"out-{path.name}"
        code, _, stderr = run(capsys, path, "--out", out, "-q")
        assert code == 0, stderr
        table = pa.ipc.open_stream(next((out / "train").glob("*.arrow")).read_bytes()).read_all()
        stored = table.column("chosen").to_pylist()
        assert [s.encode("utf-8") for s in stored] == [r["chosen"].encode("utf-8") for r in ZH]
        prompts = [p[0]["content"].encode("utf-8") for p in table.column("prompt").to_pylist()]
        assert prompts == [r["prompt"].encode("utf-8") for r in ZH]


def test_chatllama_reward_json_array_is_stored_as_scored_rows(tmp_path, capsys):
    path = tmp_path / "reward.json"
    path.write_text(json.dumps([{"user_input": "Hi", "completion": "Hello!", "score": 4},
                                {"user_input": "Hi", "completion": "Go away.", "score": 1}]), encoding="utf-8")
    assert run(capsys, path, "--out", tmp_path / "o", "-q")[0] == 0
    rows = load_from_disk(str(tmp_path / "o"))["train"]
    assert rows["chosen_score"] == [4.0, 1.0] and rows["rejected"] == [None, None]
    assert read_manifest(tmp_path / "o")["files"][str(path)]["format"] == "chatllama-reward"


def test_column_mapping_options_on_a_csv(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("question,good,bad,thread,note\nWhy?,Because.,No.,t1,x\nHow?,Like this.,Dunno.,t1,y\n",
                    encoding="utf-8")
    code, _, stderr = run(capsys, path, "--out", tmp_path / "o", "--map", "prompt=question,chosen=good",
                          "--rejected-column", "bad", "--group-column", "thread", "--source", "mine/v1")
    assert code == 0, stderr
    assert "format mapping (given: explicit column mapping: prompt=question, chosen=good" in stderr
    rows = load_from_disk(str(tmp_path / "o"))["train"]
    assert rows["chosen"] == ["Because.", "Like this."] and rows["group"] == ["t1", "t1"]
    assert rows["source"] == ["mine/v1"] * 2 and [json.loads(m) for m in rows["meta"]] == [{"note": "x"}, {"note": "y"}]


def test_csv_with_json_list_columns(tmp_path, capsys):
    path = tmp_path / "conv.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "chosen", "rejected"])
        writer.writerow([json.dumps([{"role": "user", "content": "你好"}], ensure_ascii=False),
                         json.dumps([{"role": "assistant", "content": "你好！"}], ensure_ascii=False),
                         json.dumps([{"role": "assistant", "content": "嗯。"}], ensure_ascii=False)])
    assert run(capsys, path, "--out", tmp_path / "o", "-q")[0] == 0
    row = load_from_disk(str(tmp_path / "o"))["train"][0]
    assert row["prompt"] == [{"role": "user", "content": "你好", "tool_calls": None, "tool_call_id": None, "name": None}]
    assert row["chosen"] == "你好！"


def test_several_files_keep_their_own_format_and_source(tmp_path, capsys):
    actor = tmp_path / "actor.json"
    actor.write_text(json.dumps([{"user_input": "Hi", "completion": "Hello"}]), encoding="utf-8")
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Add 2 and 2.", "input": "", "output": "4"}) + "\n", encoding="utf-8")
    assert run(capsys, actor, alpaca, "--out", tmp_path / "o", "-q")[0] == 0
    rows = load_from_disk(str(tmp_path / "o"))["train"]
    assert rows["source"] == ["custom/actor", "custom/alpaca"] and rows["chosen"] == ["Hello", "4"]
    formats = {k: v["format"] for k, v in read_manifest(tmp_path / "o")["files"].items()}
    assert formats == {str(actor): "chatllama-actor", str(alpaca): "alpaca"}


def test_unsup_text_from_txt_jsonl_and_parquet(tmp_path, capsys):
    txt = tmp_path / "corpus.txt"
    txt.write_text("First document,\nstill first.\n\n\nSecond document: 第二篇。\n", encoding="utf-8")
    jsonl_path = tmp_path / "corpus.jsonl"
    jsonl_path.write_text(json.dumps({"text": "Third.", "url": "u"}) + "\n" + json.dumps({"text": " "}) + "\n")
    parquet = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"text": ["Fourth.", "Fifth."]}), parquet)
    out = tmp_path / "ptx"
    code, stdout, stderr = run(capsys, txt, jsonl_path, parquet, "--kind", "unsup", "--out", out, "-q")
    assert code == 0, stderr
    assert "quarantined 1 (empty_text 1)" in stdout
    manifest = read_manifest(out)
    assert manifest["schema"] == "prefdata.unsup/1"
    rows = load_from_disk(str(out))["train"]
    texts = ["First document,\nstill first.", "Second document: 第二篇。", "Third.", "Fourth.", "Fifth."]
    assert rows["text"] == texts and rows.column_names == ["id", "source", "text", "meta"]
    assert [json.loads(m) for m in rows["meta"]] == [{}, {}, {"url": "u"}, {}, {}]
    assert rows["id"][0] == hashlib.sha256(json.dumps(["unsup", texts[0]], ensure_ascii=False,
                                                      separators=(",", ":")).encode()).hexdigest()[:16]


def test_unsup_needs_a_text_column_or_a_mapping(tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"body": "Some prose."}) + "\n", encoding="utf-8")
    code, _, err = run(capsys, path, "--kind", "unsup", "--out", tmp_path / "o", "-q")
    assert code == 2 and "--map text=COLUMN" in err
    assert run(capsys, path, "--kind", "unsup", "--text-column", "body", "--out", tmp_path / "o", "-q")[0] == 0
    assert load_from_disk(str(tmp_path / "o"))["train"]["text"] == ["Some prose."]


def test_library_function_and_iter_parsed(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n" + json.dumps({"prompt": 3}) + "\n")
    manifest = import_files(path, tmp_path / "o", quiet=True)  # one path is accepted as well as a list
    assert manifest["counts"]["rows_out"] == 1 and manifest["counts"]["quarantined_by_reason"] == {
        "schema_violation": 1}
    items = list(iter_parsed(path, "auto", None, "seeds/x"))
    assert isinstance(items[0], ParsedRow) and items[0].row["source"] == "seeds/x" and items[0].line == 1
    assert isinstance(items[1], Reject) and (items[1].reason, items[1].line) == ("schema_violation", 2)
    assert default_source("dir/train.jsonl.gz") == "custom/train" and default_source("x.csv") == "custom/x"


def test_quiet_prints_only_the_summary_line(tmp_path, capsys):
    code, stdout, stderr = run(capsys, "--sample", "--out", tmp_path / "o", "--quiet")
    assert code == 0 and stderr == "" and len(stdout.strip().splitlines()) == 1
