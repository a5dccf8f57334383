"""Issue #15: the ChatLLaMA export's values, not only its keys: 1/0 for an unscored pair, a scored pair's own scores."""

from __future__ import annotations

import json

from split_helpers import demo, pair, prompt_only, user, write_dataset

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

    expected_reward = []
    for row in unscored:
        question = row["prompt"][0]["content"]
        expected_reward += [{"user_input": question, "completion": row["chosen"], "score": 1.0},
                            {"user_input": question, "completion": row["rejected"], "score": 0.0}]
    expected_reward += [{"user_input": "Which knot holds best?", "completion": "A bowline.", "score": 8.5},
                        {"user_input": "Which knot holds best?", "completion": "A granny knot.", "score": 2.25}]
    assert read("reward_training_data.json") == expected_reward
    assert read("actor_training_data.json") == [{"user_input": r["prompt"][0]["content"], "completion": r["chosen"]}
                                                for r in demos]
    assert read("rlhf_training_data.json") == [{"user_input": r["prompt"][0]["content"]} for r in prompts]
