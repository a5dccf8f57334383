"""`export` at its edges, where mutation testing found it unchecked: refusals, the report, the bytes written, a crash
mid-export, and what is handed to the Hub (the upload itself is replaced at `datasets.DatasetDict.push_to_hub`)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from datasets import DatasetDict
from split_helpers import demo, pair, prompt_only, user, write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.jobs import export, export_formats
from prefdata.jobs.export import export_dataset
from prefdata.storage.dataset import read_manifest

ZH = make_row(user("用一句话解释什么是机器学习。"), "让计算机从数据中学习规律。", "不知道。", source="custom/zh")


@pytest.fixture
def source(tmp_path):
    return write_dataset(tmp_path / "in", {"rm_train": [pair(1), ZH], "sft_train": [demo(1)], "ppo_eval": [prompt_only(1)]})


def refusal(call) -> tuple[str, str | None, str | None]:
    with pytest.raises(PrefdataError) as caught:
        call()
    return caught.value.message, caught.value.field, caught.value.file


def test_bad_options_are_refused_naming_the_option(source, tmp_path):
    out = tmp_path / "out"
    assert refusal(lambda: export_dataset(source, out, format="csv")) == (
        "unknown format 'csv'; choose one of trl, dschat, chatllama, sharegpt, jsonl, parquet", "format", None)
    assert refusal(lambda: export_dataset(source, out, format="trl", container="xml")) == (
        "unknown container 'xml'; choose one of jsonl, parquet, arrow", "container", None)
    assert refusal(lambda: export_dataset(source, out, format="dschat", push_to_hub="me/data")) == (
        "--push-to-hub works with trl, jsonl and parquet, not dschat", "push_to_hub", None)
    assert refusal(lambda: export_dataset(source, out, format="jsonl", splits=["rm_eval"])) == (
        "has no split 'rm_eval' (it has ppo_eval, rm_train, sft_train)", None, str(source))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert refusal(lambda: export_dataset(source, tmp_path / "mine", format="jsonl", overwrite=True)) == (
        "is not a prefdata export directory; refusing to overwrite it", None, str(tmp_path / "mine"))
    assert not out.exists()


def test_report_names_source_fingerprints_and_container_only_for_trl(source, tmp_path):
    fingerprints = {name: info["fingerprint"] for name, info in read_manifest(source)["splits"].items()}
    trl = export_dataset(source, tmp_path / "trl", format="trl", container="parquet", quiet=True)
    assert (trl["source"], trl["source_fingerprints"], trl["container"]) == (str(source), fingerprints, "parquet")
    chatllama = export_dataset(source, tmp_path / "cl", format="chatllama", splits=["rm_train"], quiet=True)
    assert (chatllama["source_fingerprints"], chatllama["container"]) == ({"rm_train": fingerprints["rm_train"]}, None)


def test_every_unusable_row_is_counted(tmp_path):
    source = write_dataset(tmp_path / "in", {"rm_train": [demo(1), pair(1), prompt_only(1), demo(2)]})
    report = export_dataset(source, tmp_path / "out", format="trl", quiet=True)
    assert (report["splits"]["rm_train"]["rows_out"], report["splits"]["rm_train"]["skipped_unusable"]) == (1, 3)


def test_dschat_refuses_a_phase_without_eval_rows_and_writes_no_empty_file(source, tmp_path):
    """Issue #11: DeepSpeed-Chat rejects an empty eval.json ("eval corresponds to no data"); an `[]` was written."""
    message, field, _ = refusal(lambda: export_dataset(source, tmp_path / "ds", format="dschat", quiet=True))
    assert (message, field) == ("DeepSpeed-Chat needs ppo/train.json and ppo/eval.json, and no exported split has ppo "
                                "train rows; export a split with them, or leave the ppo splits out with --splits",
                                "splits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    message, _, _ = refusal(lambda: export_dataset(source, tmp_path / "x", format="dschat", splits=["rm_train"]))
    assert message.startswith("DeepSpeed-Chat needs rm/train.json and rm/eval.json, and no exported split has rm eval")


@pytest.mark.parametrize(("format", "file"), [("jsonl", "rm_train.jsonl"), ("chatllama", "reward_training_data.json")])
def test_non_ascii_is_written_as_utf8_not_escaped(source, tmp_path, format, file):
    export_dataset(source, tmp_path / "out", format=format, quiet=True)
    text = (tmp_path / "out" / file).read_text(encoding="utf-8")
    assert ZH["chosen"] in text and "\\u" not in text


def test_parquet_export_of_more_rows_than_one_write_batch(tmp_path):
    rows = [pair(i) for i in range(2 * 4096 + 5)]
    source = write_dataset(tmp_path / "in", {"rm_train": rows})
    export_dataset(source, tmp_path / "pq", format="parquet", quiet=True)
    assert pq.read_table(tmp_path / "pq" / "rm_train.parquet").column("id").to_pylist() == [r["id"] for r in rows]


def test_a_crash_mid_export_leaves_nothing_behind(source, tmp_path, monkeypatch):
    def broken(row, phase):
        raise RuntimeError("disk full")

    monkeypatch.setitem(export_formats.CONVERTERS, "trl", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(source, tmp_path / "out", format="trl", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def read_rows(path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def hub(monkeypatch):
    """Stands in for the Hub at the last call prefdata makes: records what would be uploaded, and where."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    pushed = []

    def push_to_hub(self, repo_id, config_name="default", private=False, **kwargs):
        pushed.append((repo_id, private, config_name, {name: self[name].to_list() for name in self}))

    monkeypatch.setattr(DatasetDict, "push_to_hub", push_to_hub)
    return pushed


@pytest.mark.parametrize(("format", "container"), [("trl", "arrow"), ("trl", "parquet"), ("trl", "jsonl"),
                                                    ("parquet", "jsonl"), ("jsonl", "jsonl")])
def test_push_uploads_exactly_what_was_exported(source, tmp_path, hub, format, container):
    report = export_dataset(source, tmp_path / "out", format=format, container=container, push_to_hub="me/prefs",
                            private=True, quiet=True)
    assert report["pushed_to"] == "me/prefs"
    assert {(repo, private) for repo, private, _, _ in hub} == {("me/prefs", True)}
    uploaded = {config: rows for _, _, config, rows in hub}
    exported = export_dataset(source, tmp_path / "again", format=format, container="jsonl", quiet=True)
    expected: dict[str, dict] = {}
    for name, info in exported["splits"].items():  # each phase its own config
        expected.setdefault(info["phase"], {})[name] = read_rows(tmp_path / "again" / info["file"])
    assert uploaded == expected


def test_push_is_public_unless_asked(source, tmp_path, hub):
    export_dataset(source, tmp_path / "out", format="jsonl", push_to_hub="me/prefs", quiet=True)
    assert {private for _, private, _, _ in hub} == {False}


@pytest.mark.parametrize(("error", "shown"), [(ConnectionError("no route to host\nretrying"), "ConnectionError: no route to host"),
                                              (PermissionError(), "PermissionError: ")])
def test_a_failed_push_is_one_line_naming_the_repo(source, tmp_path, monkeypatch, error, shown):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")

    def push_to_hub(self, repo_id, **kwargs):
        raise error

    monkeypatch.setattr(DatasetDict, "push_to_hub", push_to_hub)
    message, field, _ = refusal(lambda: export_dataset(source, tmp_path / "out", format="jsonl", push_to_hub="me/x",
                                                       quiet=True))
    assert (message, field) == (f"push of config 'ppo' to me/x failed: {shown}", "push_to_hub")


def test_refusals_of_a_second_export_and_of_pushing_chatllama(source, tmp_path):
    export_dataset(source, tmp_path / "out", format="jsonl", quiet=True)
    assert refusal(lambda: export_dataset(source, tmp_path / "out", format="jsonl")) == (
        "exists; pass --overwrite to replace it", None, str(tmp_path / "out"))
    assert refusal(lambda: export_dataset(source, tmp_path / "cl", format="chatllama", push_to_hub="me/data")) == (
        "--push-to-hub works with trl, jsonl and parquet, not chatllama", "push_to_hub", None)


def test_chatllama_renders_a_conversation_and_needs_both_scores(tmp_path):
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."},
                    {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Name a tree."}]
    half_scored = make_row(conversation, "Oak.", "Rock.", source="custom/t", chosen_score=7.0)
    source = write_dataset(tmp_path / "in", {"rm_train": [half_scored]})
    export_dataset(source, tmp_path / "cl", format="chatllama", quiet=True)
    asked = "Be brief.\n\nHuman: Hi.\n\nAssistant: Hello.\n\nHuman: Name a tree.\n\n##\n\n"
    assert json.loads((tmp_path / "cl" / "reward_training_data.json").read_text(encoding="utf-8")) == [
        {"user_input": asked, "completion": "Assistant: Oak.", "score": 1.0},
        {"user_input": asked, "completion": "Assistant: Rock.", "score": -1.0}]


def test_a_split_named_eval_goes_to_the_eval_file_and_the_summary_counts_rows(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(1), pair(2)], "eval": [pair(3)]})
    report = export_dataset(source, tmp_path / "ds", format="dschat", quiet=True)
    assert {name: info["file"] for name, info in report["splits"].items()} == {
        "train": "rm/train.json", "eval": "rm/eval.json"}
    assert export.export_summary(report, "OUT") == "exported 3 rows (eval 1, train 2) as dschat to OUT"  # splits in name order
