"""``--packing`` in the SFT, reward and DPO recipes: the same seed, data and micro-batches give the same losses step after step
as the padded run (tiny-llama has no dropout, so the two runs may be compared pass for pass), and the option is offered
on the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

STEPS = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing")
    helpers.write_split_dir(root / "split", sizes={"sft_train": 64, "sft_eval": 16, "rm_train": 64, "rm_eval": 16})
    helpers.train_tokenizer(root / "tok")
    return root


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def _common(workdir: Path, name: str) -> dict:
    return {"data": str(workdir / "split"), "model": "tiny-llama", "tokenizer": str(workdir / "tok"),
            "out": str(workdir / name), "cache_dir": str(workdir / "cache"), "dtype": "fp32", "zero_stage": 0,
            "micro_batch_size": 16, "lr": 3e-3, "max_steps": STEPS, "quiet": True}


def test_packed_sft_follows_the_padded_run(workdir):
    from trainers.recipes.sft import SFTConfig, train_sft

    padded = train_sft(SFTConfig(**_common(workdir, "sft-padded")))
    packed = train_sft(SFTConfig(**_common(workdir, "sft-packed"), packing=True))
    assert len(_losses(workdir / "sft-packed")) == STEPS
    assert _losses(workdir / "sft-packed") == pytest.approx(_losses(workdir / "sft-padded"), rel=1e-4)
    assert packed["eval_after"]["eval_loss"] == pytest.approx(padded["eval_after"]["eval_loss"], rel=1e-4)
    assert packed["config"]["packing"] and not padded["config"]["packing"]


def test_packed_reward_follows_the_padded_run(workdir):
    from trainers.recipes.reward import RewardConfig, train_reward

    padded = train_reward(RewardConfig(**_common(workdir, "rm-padded")))
    packed = train_reward(RewardConfig(**_common(workdir, "rm-packed"), packing=True))
    assert _losses(workdir / "rm-packed") == pytest.approx(_losses(workdir / "rm-padded"), rel=1e-4)
    for key in ("eval_accuracy", "eval_mean_margin"):
        assert packed["eval_after"][key] == pytest.approx(padded["eval_after"][key], rel=1e-4, abs=1e-5)


def test_packed_dpo_follows_the_padded_run(workdir):
    from trainers.recipes.dpo import DPOConfig, train_dpo

    padded = train_dpo(DPOConfig(**_common(workdir, "dpo-padded"), eval_batch_size=16))
    packed = train_dpo(DPOConfig(**_common(workdir, "dpo-packed"), eval_batch_size=16, packing=True))
    assert _losses(workdir / "dpo-packed") == pytest.approx(_losses(workdir / "dpo-padded"), rel=1e-4)
    for key in ("eval_accuracy", "eval_mean_margin"):
        assert packed["eval_after"][key] == pytest.approx(padded["eval_after"][key], rel=1e-4, abs=1e-5)


def test_packing_is_an_option_of_sft_reward_and_dpo_not_ppo():
    from trainers.recipes.dpo import dpo_command
    from trainers.recipes.ppo import ppo_command
    from trainers.recipes.reward import reward_command
    from trainers.recipes.sft import sft_command

    for command in (sft_command, reward_command, dpo_command):
        option = {p.name: p for p in command.params}["packing"]
        assert option.is_flag and "--packing" in option.opts
    assert "packing" not in {p.name for p in ppo_command.params}
