"""LoRA through peft in every recipe: only adapter weights change, the checkpoint holds the adapter (and the merged
model on request), and the reference of DPO/PPO is the base with the adapter off."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")
pytest.importorskip("peft", reason="LoRA needs the train extra")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from prefdata.contract.errors import PrefdataError  # noqa: E402

TARGETS = ("c_attn", "c_proj", "c_fc")  # GPT-2's linear layers (`lora.linear_module_names`)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A split, a tokenizer and a saved base model (so its weights can be compared after training)."""
    from trainers.components.models import load_causal_lm

    root = tmp_path_factory.mktemp("lora")
    helpers.write_split_dir(root / "split", {"sft_train": 128, "sft_eval": 32, "rm_train": 96, "rm_eval": 32,
                                             "ppo_train": 16})
    tokenizer = helpers.train_tokenizer(root / "tok")
    torch.manual_seed(0)
    load_causal_lm("tiny-gpt2", tokenizer).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _common(workdir: Path, name: str) -> dict:
    return {"data": str(workdir / "split"), "model": str(workdir / "base"), "out": str(workdir / name),
            "cache_dir": str(workdir / "cache"), "dtype": "fp32", "zero_stage": 0, "micro_batch_size": 16,
            "quiet": True, "lora_rank": 8, "lora_alpha": 16.0}


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_lora_sft_loss_falls_with_only_adapter_weights_changing(workdir):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from trainers.recipes.sft import SFTConfig, train_sft

    out = workdir / "sft"
    result = train_sft(SFTConfig(**_common(workdir, "sft"), lr=1e-2, epochs=2, lora_merge=True))
    losses = [m["loss"] for m in _metrics(out) if "loss" in m]
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3
    assert result["eval_after"]["perplexity"] < 0.8 * result["eval_before"]["perplexity"]

    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_A" in key or "lora_B" in key for key in adapter)
    base = AutoModelForCausalLM.from_pretrained(workdir / "base").eval()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()  # --lora-merge: OUT is a plain model
    changed = {name for name, weight in merged.state_dict().items() if not torch.equal(weight, base.state_dict()[name])}
    assert changed and all(name.split(".")[-2] in TARGETS for name in changed)  # adapted layers only

    with_adapter = PeftModel.from_pretrained(base, out / "adapter").eval()
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    with torch.no_grad():
        assert torch.allclose(with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)


def test_lora_dpo_reference_is_the_base_with_the_adapter_off(workdir):
    from trainers.recipes.dpo import DPOConfig, train_dpo

    result = train_dpo(DPOConfig(**_common(workdir, "dpo"), lr=1e-2, epochs=1))
    assert result["eval_before"]["eval_mean_margin"] == 0.0  # adapter B starts at 0: policy == base == reference
    assert result["eval_after"]["eval_accuracy"] >= 0.9
    assert result["eval_after"]["eval_mean_margin"] > 0.1
    assert (workdir / "dpo" / "adapter" / "adapter_config.json").is_file()
    assert not (workdir / "dpo" / "model.safetensors").exists()  # no merge asked: the adapter alone


def test_lora_reward_and_ppo_actor_and_critic(workdir):
    from peft import PeftConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trainers.recipes.ppo import PPOConfig, train_ppo
    from trainers.recipes.reward import RewardConfig, train_reward

    reward = train_reward(RewardConfig(**_common(workdir, "rm"), lr=1e-2, epochs=1, lora_merge=True))
    assert reward["eval_after"]["eval_accuracy"] > reward["eval_before"]["eval_accuracy"]
    assert AutoModelForSequenceClassification.from_pretrained(workdir / "rm").config.num_labels == 1

    target = AutoTokenizer.from_pretrained(workdir / "tok").convert_tokens_to_ids(helpers.GOOD)
    settings = {**_common(workdir, "ppo"), "micro_batch_size": 8}  # 16 prompts: two steps
    ppo = train_ppo(PPOConfig(**settings, critic_model=str(workdir / "rm"), lr=1e-3, max_new_tokens=4),
                    reward_model=helpers.TargetTokenReward(target))
    assert ppo["steps"] == 2 and all(torch.isfinite(torch.tensor(ppo["kls"])))
    for adapter in (workdir / "ppo" / "adapter", workdir / "ppo" / "critic" / "adapter"):
        assert PeftConfig.from_pretrained(adapter).r == 8


def test_adapter_disabled_is_the_base_model_and_targets_are_checked(workdir):
    from transformers import AutoModelForCausalLM

    from trainers.components import lora

    base = AutoModelForCausalLM.from_pretrained(workdir / "base").eval()
    ids = torch.tensor([[3, 5, 7]])
    with torch.no_grad():
        expected = base(input_ids=ids).logits.clone()
        adapted = lora.with_lora(base, lora.LoraSettings(4, 8.0, "c_attn"))
        for name, weight in adapted.named_parameters():
            if "lora_B" in name:
                weight.normal_()
        assert not torch.allclose(adapted(input_ids=ids).logits, expected)
        assert torch.allclose(lora.AdapterDisabled(adapted)(input_ids=ids).logits, expected)
    with pytest.raises(PrefdataError, match=r"q_proj.*it has: c_attn, c_fc, c_proj"):
        lora.with_lora(AutoModelForCausalLM.from_pretrained(workdir / "base"), lora.LoraSettings(4, 8.0, "q_proj"))


def test_lora_options_are_checked_in_one_line():
    from types import SimpleNamespace

    from trainers.components import lora

    off = SimpleNamespace(lora_rank=0, lora_alpha=16.0, lora_targets="all-linear", lora_merge=False)
    assert lora.LoraSettings.of(off) is None
    with pytest.raises(PrefdataError, match="--lora-merge needs --lora-rank"):
        lora.LoraSettings.of(SimpleNamespace(**{**vars(off), "lora_merge": True}))
    with pytest.raises(PrefdataError, match="must be positive"):
        lora.LoraSettings.of(SimpleNamespace(**{**vars(off), "lora_rank": 8, "lora_alpha": 0.0}))
    assert lora.LoraSettings.of(SimpleNamespace(**{**vars(off), "lora_rank": 8})) == lora.LoraSettings(8, 16.0)
