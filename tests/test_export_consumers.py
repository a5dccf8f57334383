"""Issue #11 items 2, 4 and 5: each export read the way its consumer reads it.

ChatLLaMA and LLaMA-Factory cannot be installed here (no wheels that install on this Python without a GPU stack), so
their documented reading logic is re-implemented, naming the file it follows; `datasets` is installed and used as is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from split_helpers import demo, hh_rows, pair, prompt_only, user, write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.jobs.export import FORMATS, export_dataset, export_summary
from prefdata.jobs.split import split_datasets
from prefdata.storage.dataset import iter_rows


@pytest.fixture(scope="module")
def hh_split(tmp_path_factory, hh_harmless_test) -> Path:
    """The real HH harmless-base test file, split as tests/test_pinned_outputs.py splits it (434 pairs in rm_train)."""
    tmp = tmp_path_factory.mktemp("hh")
    source = write_dataset(tmp / "in", {"train": hh_rows(hh_harmless_test)})
    split_datasets([source], tmp / "split", ratio=(6, 2, 2), eval_fraction=0.1, seed=1234, quiet=True)
    return tmp / "split"


def read_json(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def chatllama_reward_item(entry: dict) -> tuple[str, float]:
    """ChatLLaMA's `RewardDataset.__getitem__` (nebuly-ai/nebullvm, apps/accelerate/chatllama/chatllama/rlhf/
    reward.py and dataset.py): the text is ``user_input + completion`` with no separator, and a falsy score (None,
    0) is read as 2.5."""
    score = entry["score"]
    return entry["user_input"] + entry["completion"], float(score) if score else 2.5


def test_chatllama_keeps_every_real_hh_pair_in_order(hh_split, tmp_path):
    export_dataset(hh_split, tmp_path / "cl", format="chatllama", quiet=True)
    reward = read_json(tmp_path / "cl" / "reward_training_data.json")
    pairs = [row for _, row in iter_rows(hh_split) if _ == "rm_train"]
    assert len(pairs) == 434 and len(reward) == 2 * 434
    kept = 0
    for row, chosen, rejected in zip(pairs, reward[::2], reward[1::2]):
        (chosen_text, chosen_score), (rejected_text, rejected_score) = map(chatllama_reward_item, (chosen, rejected))
        assert chosen_text.endswith(row["chosen"]) and rejected_text.endswith(row["rejected"])
        kept += chosen_score > rejected_score
    assert kept == 434


def test_chatllama_joins_input_and_reply_as_its_converters_do_for_every_prompt(tmp_path):
    """artifacts/download_dataset.py (AnthropicRLHF.reformat_dataset): user_input is the conversation so far, ended
    with "\\n\\n##\\n\\n"; completion starts "Assistant: ". A lone user turn is rendered like a longer conversation."""
    conversation = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Name a tree."}]
    rows = [make_row(user("Name a tree."), "Oak.", source="custom/t"), make_row(conversation, "Elm.", source="custom/t")]
    source = write_dataset(tmp_path / "in", {"sft_train": rows})
    export_dataset(source, tmp_path / "cl", format="chatllama", quiet=True)
    actor = read_json(tmp_path / "cl" / "actor_training_data.json")
    assert [a["user_input"] + a["completion"] for a in actor] == [  # what ActorDataset trains on
        "Human: Name a tree.\n\n##\n\nAssistant: Oak.",
        "Human: Hi.\n\nAssistant: Hello.\n\nHuman: Name a tree.\n\n##\n\nAssistant: Elm."]


@pytest.mark.parametrize(("scores", "written"), [
    ((3.0, 0.0), (4.0, 1.0)),  # a real 0 would read as 2.5: both shift up by 1, the gap kept
    ((0.0, -1.0), (2.0, 1.0)),  # shifting by 1 would make the rejected 0: by 2
    ((0.0, -2.0), (1.0, -1.0)),
    ((-1.0, -3.5), (-1.0, -3.5)),  # negative scores are truthy: kept
    ((2.0, 5.0), (1.0, -1.0)),  # scores that contradict the label: the label decides
    ((2.0, 2.0), (1.0, -1.0)),
])
def test_chatllama_scored_pairs_keep_chosen_above_rejected_and_never_falsy(tmp_path, scores, written):
    row = make_row(user("Which knot?"), "A bowline.", "A granny knot.", source="custom/s", chosen_score=scores[0],
                   rejected_score=scores[1])
    source = write_dataset(tmp_path / "in", {"rm_train": [row]})
    export_dataset(source, tmp_path / "cl", format="chatllama", quiet=True)
    reward = read_json(tmp_path / "cl" / "reward_training_data.json")
    assert tuple(entry["score"] for entry in reward) == written
    assert chatllama_reward_item(reward[0])[1] > chatllama_reward_item(reward[1])[1]


@pytest.fixture(scope="module")
def small_split(tmp_path_factory) -> Path:
    """Every phase with train and eval rows (a Chinese pair among them)."""
    zh = make_row(user("用一句话解释什么是机器学习。"), "让计算机从数据中学习规律。", "不知道。", source="custom/zh")
    splits = {"sft_train": [demo(1), demo(2)], "sft_eval": [demo(3)], "rm_train": [pair(1), zh], "rm_eval": [pair(3)],
              "ppo_train": [prompt_only(1), prompt_only(3)], "ppo_eval": [prompt_only(2)]}
    return write_dataset(tmp_path_factory.mktemp("small") / "in", splits)


def load_config(folder: Path, config: str, tmp_path: Path):
    """`load_dataset(FOLDER, config)` offline, in a cache of the test's own (datasets keys a folder's cache by its
    name, so folders of one name in different tests would read as the first)."""
    from datasets import load_dataset

    return load_dataset(str(folder), config, cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize(("format", "container"), [(f, "jsonl") for f in FORMATS] + [("trl", "parquet"),
                                                                                       ("trl", "arrow")])
def test_every_export_loads_one_config_per_phase(small_split, tmp_path, monkeypatch, format, container):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / format
    report = export_dataset(small_split, out, format=format, container=container, quiet=True)
    assert sorted(report["configs"]) == ["ppo", "rm", "sft"]
    columns = {"trl": {"rm": ["prompt", "chosen", "rejected"], "sft": ["prompt", "completion"], "ppo": ["prompt"]},
               "dschat": dict.fromkeys(("rm", "sft", "ppo"), ["prompt", "chosen", "rejected"]),
               "chatllama": {"rm": ["user_input", "completion", "score"], "sft": ["user_input", "completion"],
                             "ppo": ["user_input"]},
               "sharegpt": {"rm": ["conversations", "system", "chosen", "rejected"],
                            "sft": ["conversations", "system"], "ppo": ["conversations", "system"]}}
    rows_per_split = {"rm": (2, 1), "sft": (2, 1), "ppo": (2, 1)}
    for phase in ("rm", "sft", "ppo"):
        loaded = load_config(out, phase, tmp_path)
        train, eval_ = rows_per_split[phase]
        if format == "chatllama" and phase == "rm":
            train, eval_ = 2 * train, 2 * eval_  # one entry per reply
        if format in ("dschat", "chatllama"):
            assert {s: len(d) for s, d in loaded.items()} == {"train": train, "eval": eval_}
        else:
            assert {s: len(d) for s, d in loaded.items()} == {f"{phase}_train": train, f"{phase}_eval": eval_}
        expected = columns.get(format, {}).get(phase)
        for dataset in loaded.values():
            assert dataset.column_names == (expected or dataset.column_names)


def test_an_empty_part_is_not_written_but_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    source = write_dataset(tmp_path / "in", {"rm_train": [pair(1), pair(2)], "rm_eval": [demo(1)],
                                             "sft_train": [demo(2)]})
    report = export_dataset(source, tmp_path / "trl", format="trl", quiet=True)
    assert report["splits"]["rm_eval"]["file"] is None and report["configs"] == {
        "rm": {"rm_train": "rm_train.jsonl"}, "sft": {"sft_train": "sft_train.jsonl"}}
    assert sorted(p.name for p in (tmp_path / "trl").iterdir()) == [
        "README.md", "prefdata-export.json", "rm_train.jsonl", "sft_train.jsonl"]
    assert export_summary(report, "OUT") == ("exported 3 rows (rm_eval 0, rm_train 2, sft_train 1) as trl to OUT; "
                                             "not written (no rows for the format): rm_eval")
    assert list(load_config(tmp_path / "trl", "rm", tmp_path)) == ["rm_train"]
    on_disk = json.loads((tmp_path / "trl" / "prefdata-export.json").read_text(encoding="utf-8"))
    assert on_disk["splits"]["rm_eval"] == {"phase": "rm", "rows_in": 1, "rows_out": 0, "skipped_unusable": 1,
                                            "left_out": {}, "file": None}


def llama_factory_turns(entry: dict, info: dict) -> list[dict]:
    """LLaMA-Factory's ShareGPT reading (hiyouga/LLaMA-Factory data/README.md, "Sharegpt Format"): human/observation
    at odd positions, gpt/function_call at even ones; a ranking entry's conversation ends with an ask and chosen /
    rejected are one message object each. Raises where LLaMA-Factory would drop the row."""
    tags, columns = info["tags"], info["columns"]
    turns = entry[columns["messages"]]
    for i, turn in enumerate(turns):
        allowed = (tags["user_tag"], tags["observation_tag"]) if i % 2 == 0 else (tags["assistant_tag"],
                                                                                     tags["function_tag"])
        assert turn[tags["role_tag"]] in allowed, f"invalid role tag at {i}"
    if info.get("ranking"):
        assert len(turns) % 2 == 1
        for side in ("chosen", "rejected"):
            message = entry[columns[side]]
            assert isinstance(message, dict) and message[tags["role_tag"]] == tags["assistant_tag"]
            assert isinstance(message[tags["content_tag"]], str)
    return turns


def test_sharegpt_is_read_by_llama_factory_as_it_is(small_split, tmp_path):
    system_row = make_row([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."},
                           {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "A tree?"}],
                          "Oak.", "Rock.", source="custom/t")
    source = write_dataset(tmp_path / "in", {"rm_train": [pair(1), system_row], "sft_train": [demo(1)],
                                             "ppo_train": [prompt_only(1)]})
    export_dataset(source, tmp_path / "sg", format="sharegpt", quiet=True)
    info = json.loads((tmp_path / "sg" / "dataset_info.json").read_text(encoding="utf-8"))
    assert sorted(info) == ["ppo_train", "rm_train", "sft_train"]
    assert info["rm_train"]["ranking"] is True and "ranking" not in info["sft_train"]
    assert all(entry["formatting"] == "sharegpt" for entry in info.values())
    for entry in info.values():
        items = read_json(tmp_path / "sg" / entry["file_name"])
        for item in items:
            llama_factory_turns(item, entry)
    rm = read_json(tmp_path / "sg" / "rm_train.json")
    assert rm[1] == {"conversations": [{"from": "human", "value": "Hi."}, {"from": "gpt", "value": "Hello."},
                                       {"from": "human", "value": "A tree?"}],
                     "system": "Be brief.", "chosen": {"from": "gpt", "value": "Oak."},
                     "rejected": {"from": "gpt", "value": "Rock."}}
    sft = read_json(tmp_path / "sg" / "sft_train.json")
    assert sft == [{"conversations": [{"from": "human", "value": "Demo 1: name a hardy herb."},
                                      {"from": "gpt", "value": "Thyme is hardy (1)."}], "system": ""}]


@pytest.fixture
def hub(monkeypatch):
    """The Hub replaced at `DatasetDict.push_to_hub`, after running datasets' own features check (the one the trl
    export failed before: every split of one DatasetDict must have the same features)."""
    from datasets import DatasetDict
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    pushed = []

    def push_to_hub(self, repo_id, config_name="default", private=False, **kwargs):
        self._check_values_features()
        pushed.append((config_name, sorted(self)))

    monkeypatch.setattr(DatasetDict, "push_to_hub", push_to_hub)
    return pushed


def test_trl_push_sends_each_phase_as_its_own_config(small_split, tmp_path, hub):
    export_dataset(small_split, tmp_path / "t", format="trl", push_to_hub="me/prefs", quiet=True)
    assert hub == [("ppo", ["ppo_eval", "ppo_train"]), ("rm", ["rm_eval", "rm_train"]),
                   ("sft", ["sft_eval", "sft_train"])]


@pytest.mark.parametrize(("setup", "message"), [
    ("no_token", "no Hugging Face token: set HF_TOKEN or run `hf auth login` before --push-to-hub"),
    ("bad_name", "'me/bad name' is not a Hub repository name: "),
])
def test_push_refusals_come_before_anything_is_written(small_split, tmp_path, hub, monkeypatch, setup, message):
    if setup == "no_token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    repo = "me/bad name" if setup == "bad_name" else "me/prefs"
    with pytest.raises(PrefdataError) as caught:
        export_dataset(small_split, tmp_path / "t", format="trl", push_to_hub=repo, quiet=True)
    assert caught.value.message.startswith(message) and caught.value.field == "push_to_hub"
    assert not (tmp_path / "t").exists() and hub == []


def test_a_config_that_does_not_load_is_named_and_nothing_is_sent(small_split, tmp_path, hub, monkeypatch):
    from prefdata.jobs import export_formats

    def mixed(row, phase):  # a converter whose rm_eval rows have text where rm_train has messages
        conversion = export_formats.to_trl(row, phase)
        return conversion._replace(items=[{**item, "chosen": "text"} for item in conversion.items]
                                   if row["id"] == pair(3)["id"] else conversion.items)

    monkeypatch.setitem(export_formats.CONVERTERS, "trl", mixed)
    with pytest.raises(PrefdataError) as caught:
        export_dataset(small_split, tmp_path / "t", format="trl", push_to_hub="me/p", quiet=True)
    assert caught.value.message.startswith("config 'rm' (rm_eval, rm_train) does not load as one dataset, so nothing "
                                           "was pushed: ")
    assert not (tmp_path / "t").exists() and hub == []
