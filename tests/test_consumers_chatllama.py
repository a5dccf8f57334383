"""The `chatllama` export's three files (and their eval twins), read as ChatLLaMA reads them (issue #11 items 1, 2).

ChatLLaMA (nebuly-ai) is not installable, so `consumer_support` re-implements its readers from chatllama/rlhf/actor.py
(ActorDataset: ``user_input + completion``), reward.py (RewardDataset: the same text, a falsy score read as 2.5) and
trainer.py (ExamplesSampler: ``user_input``). Expected texts are built from the split's rows the way ChatLLaMA's own
converters build them (artifacts/download_dataset.py, AnthropicRLHF.reformat_dataset): the conversation so far,
"\\n\\n##\\n\\n", then "Assistant: " and the reply.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import consumer_support as support  # noqa: E402

from prefdata.contract.phases import serves  # noqa: E402
from prefdata.contract.render import render  # noqa: E402

FILES = {"sft": "actor_{}_data.json", "rm": "reward_{}_data.json", "ppo": "rlhf_{}_data.json"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("chatllama")
    return support.sample_export(root, "chatllama")


def _user_input(prompt: list[dict]) -> str:
    """The conversation before the reply as ChatLLaMA's HH converter writes it."""
    conversation = render(prompt, None, "dschat").removesuffix("\n\nAssistant:")
    return conversation + "\n\n##\n\n"


@pytest.mark.parametrize("part", ["training", "eval"])
def test_actor_reward_and_rlhf_files_read_back_the_rows(exported, part):
    split_dir, export_dir = exported
    suffix = "train" if part == "training" else "eval"

    def rows(phase: str) -> list[dict]:
        return [row for row in support.split_rows(split_dir, f"{phase}_{suffix}") if serves(row, phase)]

    actor = support.chatllama_actor(export_dir / FILES["sft"].format(part))
    assert actor == [_user_input(r["prompt"]) + "Assistant: " + r["chosen"] for r in rows("sft")] != []

    reward, pairs = support.chatllama_reward(export_dir / FILES["rm"].format(part)), rows("rm")
    assert len(reward) == 2 * len(pairs) > 0
    for row, (chosen_text, chosen_score), (rejected_text, rejected_score) in zip(pairs, reward[::2], reward[1::2]):
        assert chosen_text == _user_input(row["prompt"]) + "Assistant: " + row["chosen"]
        assert rejected_text == _user_input(row["prompt"]) + "Assistant: " + row["rejected"]
        assert chosen_score > rejected_score  # ChatLLaMA reads the label the row carries

    rlhf = support.chatllama_rlhf(export_dir / FILES["ppo"].format(part))
    assert rlhf == [_user_input(r["prompt"]) for r in rows("ppo")] != []
