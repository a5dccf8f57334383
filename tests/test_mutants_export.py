"""Issue #15: the ChatLLaMA export's values, not only its keys: +1/-1 for an unscored pair (issue #11: never a falsy
score, which ChatLLaMA reads as 2.5), a scored pair's own scores; input and reply as ChatLLaMA's converters join them."""

from __future__ import annotations

import json

import pytest
from split_helpers import demo, pair, prompt_only, user, write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.jobs.export import export_dataset


def test_chatllama_reward_scores_favour_the_chosen_reply(tmp_path):
    unscored = [pair(i) for i in range(3)]
    scored = make_row(user("Which knot holds best?"), "A bowline.", "A granny knot.", source="custom/scored",
                      chosen_score=8.5, rejected_score=2.25)
    demos, prompts = [demo(i) for i in range(2)], [prompt_only(i) for i in range(2)]
    source = write_dataset(tmp_path / "in", {"sft_train": demos, "rm_train": [*unscored, scored], "ppo_train": prompts})

    export_dataset(source, tmp_path / "cl", format="chatllama", quiet=True)

    def read(name: str) -> list[dict]:
        return json.loads((tmp_path / "cl" / name).read_text(encoding="utf-8"))

    def asked(row: dict) -> str:
        return f"Human: {row['prompt'][0]['content']}\n\n##\n\n"

    expected_reward = []
    for row in unscored:
        expected_reward += [{"user_input": asked(row), "completion": f"Assistant: {row['chosen']}", "score": 1.0},
                            {"user_input": asked(row), "completion": f"Assistant: {row['rejected']}", "score": -1.0}]
    knot = "Human: Which knot holds best?\n\n##\n\n"
    expected_reward += [{"user_input": knot, "completion": "Assistant: A bowline.", "score": 8.5},
                        {"user_input": knot, "completion": "Assistant: A granny knot.", "score": 2.25}]
    assert read("reward_training_data.json") == expected_reward
    assert read("actor_training_data.json") == [{"user_input": asked(r), "completion": f"Assistant: {r['chosen']}"}
                                                for r in demos]
    assert read("rlhf_training_data.json") == [{"user_input": asked(r)} for r in prompts]


def split_dataset(tmp_path):
    """Every `prefdata split` split name, with one row in rm_train that rm cannot use (it has no rejected reply)."""
    splits = {"sft_train": [demo(1), demo(2)], "sft_eval": [demo(3)], "rm_train": [pair(1), pair(2), demo(4)],
              "rm_eval": [pair(3)], "ppo_train": [prompt_only(1), pair(4)], "ppo_eval": [prompt_only(2)]}
    return write_dataset(tmp_path / "in", splits), splits


def test_chatllama_eval_splits_get_their_own_files_and_unusable_rows_are_counted(tmp_path):
    source, splits = split_dataset(tmp_path)
    report = export_dataset(source, tmp_path / "cl", format="chatllama", quiet=True)
    files = {"sft_train": "actor_training_data.json", "sft_eval": "actor_eval_data.json",
             "rm_train": "reward_training_data.json", "rm_eval": "reward_eval_data.json",
             "ppo_train": "rlhf_training_data.json", "ppo_eval": "rlhf_eval_data.json"}
    assert sorted(p.name for p in (tmp_path / "cl").iterdir()) == sorted([*files.values(), "prefdata-export.json",
                                                                           "README.md"])
    written = {"sft_train": 2, "sft_eval": 1, "rm_train": 4, "rm_eval": 2, "ppo_train": 2, "ppo_eval": 1}
    for name, rows in splits.items():
        assert report["splits"][name] == {"phase": name.split("_")[0], "rows_in": len(rows), "rows_out": written[name],
                                          "skipped_unusable": 1 if name == "rm_train" else 0, "left_out": {},
                                          "file": files[name]}
        assert len(json.loads((tmp_path / "cl" / files[name]).read_text(encoding="utf-8"))) == written[name]
    on_disk = json.loads((tmp_path / "cl" / "prefdata-export.json").read_text(encoding="utf-8"))
    assert on_disk["splits"] == report["splits"] and on_disk["format"] == "chatllama"


def test_dschat_phases_carry_only_what_the_phase_uses(tmp_path):
    source, splits = split_dataset(tmp_path)
    export_dataset(source, tmp_path / "ds", format="dschat", quiet=True)

    def read(phase: str, part: str) -> list[dict]:
        return json.loads((tmp_path / "ds" / phase / f"{part}.json").read_text(encoding="utf-8"))

    def asked(row: dict) -> str:
        return f"Human: {row['prompt'][0]['content']}\n\nAssistant:"

    assert read("sft", "train") == [{"prompt": asked(r), "chosen": r["chosen"], "rejected": None}
                                    for r in splits["sft_train"]]
    assert read("rm", "eval") == [{"prompt": asked(r), "chosen": r["chosen"], "rejected": r["rejected"]}
                                  for r in splits["rm_eval"]]
    assert read("ppo", "train") == [{"prompt": asked(r), "chosen": None, "rejected": None}
                                    for r in splits["ppo_train"]]


def test_plain_split_names_get_the_phase_their_rows_allow(tmp_path):
    splits = {"train": [pair(1), pair(2)], "test": [demo(1), pair(3)], "validation": [prompt_only(1), demo(2)]}
    source = write_dataset(tmp_path / "in", splits)
    report = export_dataset(source, tmp_path / "trl", format="trl", quiet=True)
    assert {name: info["phase"] for name, info in report["splits"].items()} == {
        "train": "rm", "test": "sft", "validation": "ppo"}
    test_rows = [json.loads(line) for line in (tmp_path / "trl" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert test_rows == [{"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["chosen"]}]}
                         for r in splits["test"]]
    with pytest.raises(PrefdataError, match="DeepSpeed-Chat needs ppo/train.json and ppo/eval.json, and no exported "
                                            "split has ppo train rows"):  # test -> sft/eval.json, validation -> ppo/eval
        export_dataset(source, tmp_path / "ds", format="dschat", quiet=True)


def test_trl_rm_skips_rows_without_a_pair_and_sft_rows_without_a_reply(tmp_path):
    source = write_dataset(tmp_path / "in", {"rm_train": [pair(1), demo(1)], "sft_train": [demo(2), prompt_only(1)]})
    report = export_dataset(source, tmp_path / "trl", format="trl", quiet=True)
    assert [(report["splits"][n]["rows_out"], report["splits"][n]["skipped_unusable"]) for n in ("rm_train", "sft_train")
            ] == [(1, 1), (1, 1)]
