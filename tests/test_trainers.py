"""The three recipes on CPU with tiny models built from a config and a tokenizer trained here.

Each test checks that training learns something it could fail to learn: SFT loss and eval perplexity fall, the reward
model ranks unseen pairs, PPO raises the reward of a rule-based reward model, and checkpoints reload with
`from_pretrained`. DeepSpeed runs in this process as a world of one (gloo); `test_distributed.py` runs two ranks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainers")
    helpers.write_split_dir(root / "split")
    helpers.train_tokenizer(root / "tok")
    return root


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_sft_loss_falls_eval_perplexity_improves_and_checkpoint_reloads(workdir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainers.components.collate import collate_sft
    from trainers.components.tokens import TokenizeSpec, tokenized
    from trainers.recipes.sft import SFTConfig, train_sft

    out = workdir / "sft"
    result = train_sft(SFTConfig(data=str(workdir / "split"), model="tiny-gpt2", tokenizer=str(workdir / "tok"),
                                 out=str(out), cache_dir=str(workdir / "cache"), dtype="fp32", zero_stage=0,
                                 micro_batch_size=16, lr=3e-3, epochs=2, quiet=True))
    losses = [m["loss"] for m in _metrics(out) if "loss" in m]
    assert len(losses) == result["steps"] == 24
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4
    before, after = result["eval_before"], result["eval_after"]
    assert after["perplexity"] < before["perplexity"] / 5

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token_id is not None and len(tokenizer) == model.config.vocab_size
    cache = tokenized(workdir / "split", "sft_eval", tokenizer, TokenizeSpec("sft"), workdir / "cache", quiet=True)
    assert not cache.built  # same tokenizer files, same key: the reloaded tokenizer hits the cache
    batch = collate_sft([cache[i] for i in range(len(cache))], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        loss = model(**batch).loss.item()
    assert loss == pytest.approx(after["eval_loss"], rel=0.02)


def test_reward_model_ranks_unseen_pairs_zero2_bf16(workdir):
    from transformers import AutoModelForSequenceClassification

    from trainers.components.collate import collate_pairs
    from trainers.components.models import ValueModel, last_token_scores
    from trainers.components.tokens import TokenizeSpec, tokenized
    from trainers.recipes.reward import RewardConfig, train_reward

    out = workdir / "rm"
    result = train_reward(RewardConfig(data=str(workdir / "split"), model="tiny-gpt2", tokenizer=str(workdir / "tok"),
                                       out=str(out), cache_dir=str(workdir / "cache"), dtype="bf16", zero_stage=2,
                                       micro_batch_size=16, lr=2e-3, epochs=1, quiet=True))
    assert result["eval_after"]["eval_accuracy"] >= 0.9
    assert result["eval_after"]["eval_mean_margin"] > result["eval_before"]["eval_mean_margin"] + 1.0
    assert [m for m in _metrics(out) if m.get("event") == "start"][0]["zero_stage"] == 2

    model = ValueModel(AutoModelForSequenceClassification.from_pretrained(out, torch_dtype=torch.float32)).eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    cache = tokenized(workdir / "split", "rm_eval", tokenizer, TokenizeSpec("rm"), workdir / "cache", quiet=True)
    batch = collate_pairs([cache[i] for i in range(len(cache))], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        chosen, rejected = last_token_scores(model(batch["input_ids"], batch["attention_mask"]),
                                             batch["attention_mask"]).chunk(2)
    assert (chosen > rejected).float().mean().item() >= 0.9


def test_ppo_raises_reward_with_finite_kl(workdir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from trainers.recipes.ppo import PPOConfig, train_ppo

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
    target = tokenizer.convert_tokens_to_ids(helpers.GOOD)
    out = workdir / "ppo"
    result = train_ppo(
        PPOConfig(data=str(workdir / "split"), model="tiny-gpt2", tokenizer=str(workdir / "tok"),
                  critic_model="tiny-gpt2", out=str(out), cache_dir=str(workdir / "cache"), dtype="fp32",
                  zero_stage=0, micro_batch_size=16, lr=5e-3, epochs=3, max_new_tokens=8, kl_coef=0.01,
                  ppo_epochs=2, seed=1, quiet=True),
        reward_model=helpers.TargetTokenReward(target),
    )
    rewards, kls = result["rewards"], result["kls"]
    assert len(rewards) == 12
    # A random policy over the small vocabulary says the target about once in 8 tokens x 64 words: reward ~0.1.
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 1.0
    assert all(torch.isfinite(torch.tensor(kls))) and max(kls) > 0
    logged = [m for m in _metrics(out) if "reward" in m]
    assert {"kl", "policy_loss", "value_loss", "clip_fraction"} <= set(logged[-1])
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == len(tokenizer)
    assert AutoModelForSequenceClassification.from_pretrained(out / "critic").config.num_labels == 1
