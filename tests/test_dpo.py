"""DPO, IPO and SimPO on CPU with tiny models: each must learn to prefer the polite replies of unseen pairs.

The authored pairs (`trainer_helpers.rows`) always prefer a reply opening with "gladly" over one opening with
"whatever"; a policy that learns this ranks the pairs of ``rm_eval`` (different prompts) correctly. The policy starts
equal to its reference, so every implicit reward starts at 0: accuracy 0 and margin 0 before training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIZES = {"rm_train": 128, "rm_eval": 32}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    helpers.write_split_dir(root / "split", SIZES)
    helpers.train_tokenizer(root / "tok")
    return root


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _config(workdir: Path, name: str, **overrides):
    from trainers.recipes.dpo import DPOConfig

    settings = {"data": str(workdir / "split"), "model": "tiny-gpt2", "tokenizer": str(workdir / "tok"),
                "out": str(workdir / name), "cache_dir": str(workdir / "cache"), "dtype": "fp32", "zero_stage": 0,
                "micro_batch_size": 16, "lr": 2e-3, "epochs": 1, "quiet": True, **overrides}
    return DPOConfig(**settings)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss", ["dpo", "ipo"])
def test_eval_accuracy_rises_and_margin_grows(workdir, loss, monkeypatch):
    from trainers.components import preference
    from trainers.recipes.dpo import train_dpo

    calls = []
    original = preference.reference_logprobs
    monkeypatch.setattr(preference, "reference_logprobs", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    result = train_dpo(_config(workdir, loss, loss=loss))
    before, after = result["eval_before"], result["eval_after"]
    assert before["eval_accuracy"] == 0.0 and before["eval_mean_margin"] == 0.0  # policy == reference at the start
    assert after["eval_accuracy"] >= 0.9
    assert after["eval_mean_margin"] > 0.1
    assert result["last_loss"] < result["first_loss"]
    assert calls == [SIZES["rm_train"], SIZES["rm_eval"]]  # the reference scored each split once, before training
    logged = [m for m in _metrics(workdir / loss) if "loss" in m and "step" in m]
    assert len(logged) == result["steps"] == SIZES["rm_train"] // 16
    assert {"accuracy", "margin", "chosen_reward", "rejected_reward"} <= set(logged[-1])


def test_simpo_learns_without_a_reference(workdir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from trainers.components import preference
    from trainers.recipes.dpo import train_dpo

    def no_reference(*args, **kwargs):
        raise AssertionError("SimPO must not compute reference log-probs")

    monkeypatch.setattr(preference, "reference_logprobs", no_reference)
    result = train_dpo(_config(workdir, "simpo", loss="simpo"))
    assert result["config"]["beta"] == 2.0  # SimPO's own default
    assert result["eval_after"]["eval_accuracy"] >= 0.9
    assert result["eval_after"]["eval_mean_margin"] > result["eval_before"]["eval_mean_margin"] + 1.0
    start = _metrics(workdir / "simpo")[0]
    assert start["reference"] == "none" and start["loss_type"] == "simpo"
    assert AutoModelForCausalLM.from_pretrained(workdir / "simpo").config.model_type == "gpt2"


def test_cli_with_a_separate_reference_model(workdir):
    """`prefdata train dpo --ref-model DIR`: the reference is that model, not the policy, so rewards differ at once."""
    reference = workdir / "reference"
    if not reference.exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainers.components.models import load_causal_lm

        tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
        load_causal_lm("tiny-gpt2", tokenizer).save_pretrained(reference)  # random weights, not the policy's
        tokenizer.save_pretrained(reference)
        assert AutoModelForCausalLM.from_pretrained(reference)
    command = ["prefdata", "train", "dpo", "--data", str(workdir / "split"), "--model", "tiny-gpt2", "--tokenizer",
               str(workdir / "tok"), "--ref-model", str(reference), "--out", str(workdir / "cli"), "--cache-dir",
               str(workdir / "cache"), "--dtype", "fp32", "--zero-stage", "0", "--max-steps", "2", "--seed", "7",
               "--quiet"]
    done = subprocess.run(command, env=helpers.subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("dpo: 2 steps, loss ") and "eval_accuracy" in done.stdout
    start, before = _metrics(workdir / "cli")[:2]
    assert start["reference"] == str(reference)
    assert before["eval_mean_margin"] != 0.0


def test_refuses_a_bad_beta_in_one_line(workdir):
    command = [sys.executable, "-m", "trainers.recipes.dpo", "--data", str(workdir / "split"), "--model", "tiny-gpt2",
               "--tokenizer", str(workdir / "tok"), "--out", str(workdir / "bad"), "--beta", "-1"]
    done = subprocess.run(command, env=helpers.subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["prefdata: error: beta: --beta must be positive and --label-smoothing "
                                                "in [0, 0.5)"]


def test_rm_cache_entries_carry_each_sides_prompt_length(workdir):
    """DPO's log-probs cover the reply only: the cached pair says where each side's reply starts."""
    from transformers import AutoTokenizer

    from prefdata.contract.render import render
    from prefdata.storage.dataset import load
    from trainers.components.tokens import TokenizeSpec, tokenized

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
    pairs = tokenized(workdir / "split", "rm_eval", tokenizer, TokenizeSpec("rm"), workdir / "cache", quiet=True)
    row = load(workdir / "split")["rm_eval"][0]
    prompt_ids = tokenizer(render(row["prompt"]), add_special_tokens=False)["input_ids"]
    first = pairs[0]
    assert int(first["chosen_prompt_tokens"]) == int(first["rejected_prompt_tokens"]) == len(prompt_ids)
    assert first["chosen_input_ids"][: len(prompt_ids)].tolist() == prompt_ids
    reply = tokenizer.decode(first["chosen_input_ids"][len(prompt_ids) :], skip_special_tokens=True)
    assert reply.split() == row["chosen"].split()
