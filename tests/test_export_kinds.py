"""Issue #11 item 7, export side: the row kinds of `prefdata.preference/2` (unpaired labelled replies, continuations of
several messages, tool calls) in every export format. A format that has a shape for a kind writes it; one that has
none leaves the row out with a reason, never a row that means something else (an undesirable reply as a
demonstration, a dropped turn)."""

from __future__ import annotations

import json

import pytest
from split_helpers import pair, write_dataset

from prefdata.contract.render import render
from prefdata.contract.row import make_row
from prefdata.jobs.export import export_dataset, export_summary
from prefdata.jobs.export_formats import CONVERTERS, LEFT_OUT, UNPAIRED, Conversion

PROMPT = [{"role": "user", "content": "What is the weather in Paris?"}]
CALLS = [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]
# A continuation with a tool call and its result (spec_v2: tool_calls is canonical JSON text on the assistant message).
TOOL_TURNS = [{"role": "assistant", "content": "", "tool_calls": json.dumps(CALLS, separators=(",", ":"))},
              {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1", "name": "weather"},
              {"role": "assistant", "content": "It is 18 C and sunny."}]


def v2_row(**fields) -> dict:
    """A row as `prefdata.preference/2` stores it (the new columns None unless set)."""
    row = {"id": "x", "source": "custom/t", "group": "g", "prompt": PROMPT, "chosen": None, "rejected": None,
           "chosen_score": None, "rejected_score": None, "meta": None, "chosen_turns": None, "rejected_turns": None,
           "label": None}
    return {**row, **fields}


UNDESIRABLE = v2_row(rejected="Look it up yourself.", label=False)
DESIRABLE = v2_row(chosen="It is 18 C and sunny.", label=True)
TOOL_PAIR = v2_row(chosen_turns=TOOL_TURNS, rejected="I cannot know that.")
TWO_MESSAGES = [{"role": "assistant", "content": "Let me think."}, {"role": "assistant", "content": "Sunny."}]


@pytest.mark.parametrize("format", ["trl", "dschat", "chatllama", "sharegpt"])
def test_an_unpaired_reply_never_becomes_a_demonstration(format):
    for row in (UNDESIRABLE, DESIRABLE):
        assert CONVERTERS[format](row, "sft") == Conversion([])


def test_trl_writes_unpaired_rows_in_its_unpaired_preference_format():
    assert CONVERTERS["trl"](UNDESIRABLE, "rm") == Conversion([{
        "prompt": PROMPT, "completion": [{"role": "assistant", "content": "Look it up yourself."}], "label": False}],
        UNPAIRED)
    assert CONVERTERS["trl"](DESIRABLE, "rm").items[0]["label"] is True


def test_sharegpt_writes_unpaired_rows_with_kto_tag():
    assert CONVERTERS["sharegpt"](UNDESIRABLE, "rm") == Conversion([{
        "conversations": [{"from": "human", "value": PROMPT[0]["content"]},
                          {"from": "gpt", "value": "Look it up yourself."}],
        "system": "", "kto_tag": False}], UNPAIRED)


@pytest.mark.parametrize("format", ["dschat", "chatllama"])
def test_flat_text_formats_leave_out_unpaired_rows_and_tool_calls_with_a_reason(format):
    assert CONVERTERS[format](UNDESIRABLE, "rm") == Conversion([], left_out="unpaired")
    assert CONVERTERS[format](TOOL_PAIR, "rm") == Conversion([], left_out="tool_calls")
    assert CONVERTERS[format](TOOL_PAIR, "sft") == Conversion([], left_out="tool_calls")
    assert set(LEFT_OUT) >= {"unpaired", "tool_calls"}


def test_trl_keeps_tool_calls_as_chat_templates_read_them():
    [item] = CONVERTERS["trl"](TOOL_PAIR, "rm").items
    assert item["chosen"] == [{"role": "assistant", "content": "", "tool_calls": CALLS},
                              TOOL_TURNS[1], TOOL_TURNS[2]]
    assert item["rejected"] == [{"role": "assistant", "content": "I cannot know that."}]


def test_sharegpt_writes_a_tool_call_as_function_call_and_observation():
    [item] = CONVERTERS["sharegpt"](TOOL_PAIR, "sft").items
    assert item["conversations"][1:] == [
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": "18 C, sunny"}, {"from": "gpt", "value": "It is 18 C and sunny."}]
    # ranking needs one message per reply: a continuation of several is left out, not cut to its last message
    assert CONVERTERS["sharegpt"](TOOL_PAIR, "rm") == Conversion([], left_out="turns")


def test_a_continuation_of_several_messages_is_kept_or_left_out_never_cut():
    row = v2_row(chosen_turns=TWO_MESSAGES, rejected="Rainy.")
    [trl] = CONVERTERS["trl"](row, "rm").items
    assert trl["chosen"] == TWO_MESSAGES
    # two gpt turns in a row break LLaMA-Factory's alternation: left out
    assert CONVERTERS["sharegpt"](row, "sft") == Conversion([], left_out="turns")


def test_flat_text_formats_render_a_continuation_of_several_messages_whole():
    row = v2_row(chosen_turns=TWO_MESSAGES, rejected="Rainy.")
    [item] = CONVERTERS["dschat"](row, "rm").items
    assert f"{item['prompt']} {item['chosen']}" == render(PROMPT, TWO_MESSAGES, template="dschat")
    assert item["chosen"] == "Let me think.\n\nAssistant: Sunny."
    entries = CONVERTERS["chatllama"](row, "rm").items
    assert entries[0]["completion"] == "Assistant: Let me think.\n\nAssistant: Sunny."


@pytest.fixture
def v2_source(tmp_path):
    """A /2 directory: pairs, unpaired rows (one each way) and a pair whose chosen reply calls a tool, in rm_train."""
    rows = [pair(1), pair(2),
            make_row(PROMPT, rejected="Look it up yourself.", label=False, source="custom/kto"),
            make_row(PROMPT, "It is 18 C and sunny.", label=True, source="custom/kto"),
            make_row(PROMPT, TOOL_TURNS, "I cannot know that.", source="custom/tools")]
    return write_dataset(tmp_path / "in", {"rm_train": rows, "rm_eval": [pair(3)]}), rows


def test_trl_export_has_an_rm_unpaired_config_that_loads(v2_source, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    source, rows = v2_source
    report = export_dataset(source, tmp_path / "trl", format="trl", quiet=True)
    info = report["splits"]["rm_train"]
    assert (info["rows_out"], info["left_out"], info["file"], info["unpaired_file"]) == (
        5, {}, "rm_train.jsonl", "rm_train_unpaired.jsonl")
    assert report["configs"]["rm_unpaired"] == {"rm_train": "rm_train_unpaired.jsonl"}
    from datasets import load_dataset

    loaded = load_dataset(str(tmp_path / "trl"), "rm_unpaired", cache_dir=str(tmp_path / "cache"))
    assert loaded["rm_train"]["label"] == [False, True]
    assert [c[0]["content"] for c in loaded["rm_train"]["completion"]] == ["Look it up yourself.",
                                                                          "It is 18 C and sunny."]


def test_dschat_counts_what_it_leaves_out_in_the_summary_and_manifest(v2_source, tmp_path):
    source, _ = v2_source
    report = export_dataset(source, tmp_path / "ds", format="dschat", quiet=True)
    assert report["splits"]["rm_train"]["left_out"] == {"tool_calls": 1, "unpaired": 2}
    assert report["splits"]["rm_train"]["rows_out"] == 2
    assert export_summary(report, "OUT") == (
        "exported 3 rows (rm_eval 1, rm_train 2) as dschat to OUT; left out: "
        f"1 tool_calls ({LEFT_OUT['tool_calls']}), 2 unpaired ({LEFT_OUT['unpaired']})")
    on_disk = json.loads((tmp_path / "ds" / "prefdata-export.json").read_text(encoding="utf-8"))
    assert on_disk["splits"]["rm_train"]["left_out"] == {"tool_calls": 1, "unpaired": 2}
    assert "tool_calls" in (tmp_path / "ds" / "README.md").read_text(encoding="utf-8")


def test_sharegpt_writes_the_kto_file_and_its_dataset_info_entry(v2_source, tmp_path):
    source, _ = v2_source
    export_dataset(source, tmp_path / "sg", format="sharegpt", quiet=True)
    info = json.loads((tmp_path / "sg" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["rm_train_unpaired"]["columns"]["kto_tag"] == "kto_tag" and "ranking" not in info["rm_train_unpaired"]
    kto = json.loads((tmp_path / "sg" / "rm_train_unpaired.json").read_text(encoding="utf-8"))
    assert [item["kto_tag"] for item in kto] == [False, True]


def test_trl_parquet_leaves_out_tool_calls_its_fixed_message_type_cannot_hold(v2_source, tmp_path):
    source, _ = v2_source
    report = export_dataset(source, tmp_path / "pq", format="trl", container="parquet", quiet=True)
    assert report["splits"]["rm_train"]["left_out"] == {"tool_calls": 1}
    assert export_dataset(source, tmp_path / "j", format="trl", quiet=True)["splits"]["rm_train"]["left_out"] == {}
