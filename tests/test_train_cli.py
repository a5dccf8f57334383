"""`prefdata train sft|reward|ppo` end to end on one split directory: the shipped DeepSpeed configs (ZeRO-2 for SFT and
the reward model, ZeRO-3 for PPO), resume from a checkpoint, the ptx mix, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from prefdata.cli import main  # noqa: E402


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _run(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as e:  # a failure exits non-zero; success returns (or exits 0)
        assert e.code in (None, 0)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_pipeline_through_the_cli_with_resume_and_ptx(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    sizes = {"sft_train": 48, "sft_eval": 8, "rm_train": 48, "rm_eval": 8, "ppo_train": 16, "ppo_eval": 4}
    data = helpers.write_split_dir(tmp_path / "split", sizes)
    unsup = helpers.write_unsup_dir(tmp_path / "unsup")
    helpers.train_tokenizer(tmp_path / "tok")
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--micro-batch-size", "8", "--lr", "1e-3",
              "--dtype", "fp32", "--quiet"]

    sft = tmp_path / "sft"
    sft_args = ["train", "sft", *common, "--model", "tiny-llama", "--tokenizer", str(tmp_path / "tok"), "--out", str(sft)]
    _run([*sft_args, "--max-steps", "2", "--save-steps", "1"])
    _run([*sft_args, "--max-steps", "4", "--resume"])
    steps = [m["step"] for m in _metrics(sft) if "loss" in m]
    assert steps == [1, 2, 3, 4]  # the resumed run continued at step 3, it did not start over
    assert [m["resumed_at"] for m in _metrics(sft) if m.get("event") == "start"] == [0, 2]
    assert AutoModelForCausalLM.from_pretrained(sft).config.model_type == "llama"

    rm = tmp_path / "rm"
    _run(["train", "reward", *common, "--model", str(sft), "--out", str(rm), "--max-steps", "2", "--grad-accum", "2"])
    assert [m["step"] for m in _metrics(rm) if "loss" in m] == [1, 2]  # 4 micro-batches, 2 optimizer steps
    assert AutoModelForSequenceClassification.from_pretrained(rm).config.num_labels == 1

    ppo = tmp_path / "ppo"
    ppo_args = ["train", "ppo", *common, "--model", str(sft), "--reward-model", str(rm), "--out", str(ppo),
                "--max-new-tokens", "6", "--unsup", str(unsup), "--ptx-coef", "0.5", "--max-seq-len", "32"]
    _run([*ppo_args, "--max-steps", "1", "--save-steps", "1"])
    _run([*ppo_args, "--max-steps", "2", "--resume"])
    logged = _metrics(ppo)
    assert [m["step"] for m in logged if "reward" in m] == [1, 2]
    assert [m["resumed_at"] for m in logged if m.get("event") == "start"] == [0, 1]
    assert [m for m in logged if m.get("event") == "start"][0]["zero_stage"] == 3  # the shipped ppo.json
    assert all("ptx_loss" in m for m in logged if "reward" in m) and len([m for m in logged if "reward" in m]) == 2
    assert AutoModelForCausalLM.from_pretrained(ppo).config.model_type == "llama"
    assert AutoModelForSequenceClassification.from_pretrained(ppo / "critic").config.num_labels == 1


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 4, "sft_eval": 2})
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sft", "--data", str(data), "--model", "tiny-gpt2", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prefdata: error:") and "--tokenizer" in err and "\n" not in err
    helpers.train_tokenizer(tmp_path / "tok")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sft", "--data", str(data), "--model", "no-such-model", "--tokenizer", str(tmp_path / "tok"),
              "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2 and "no-such-model" in capsys.readouterr().err


def test_tokenizer_trained_on_the_data_round_trips(tmp_path):
    from transformers import AutoTokenizer

    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 30, "rm_train": 10})
    _run(["train", "tokenizer", "--data", str(data), "--out", str(tmp_path / "tok"), "--vocab-size", "400", "--quiet"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    text = "Human: Where does the owl live ?\n\nAssistant: gladly , The owl lives in the hill ."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and 300 < len(tokenizer) <= 400
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert len(ids) < len(text) / 2  # merges were learnt from the data, not just bytes
