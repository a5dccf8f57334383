"""`prefdata train sft|reward|ppo|tokenizer` end to end on one split directory: the shipped DeepSpeed configs (ZeRO-2
for SFT and the reward model, ZeRO-3 for PPO), resume from a checkpoint, the margin loss, the ptx mix, one-line errors
for user mistakes, and the output streams: the summary line (the result) on stdout, diagnostics on stderr."""

from __future__ import annotations

import json
import math
import subprocess
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


def _summary(capsys, phase: str, out: Path) -> str:
    """The run's stdout, which with --quiet must be exactly its one summary line."""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{phase}: ") and lines[0].endswith(f"; checkpoint in {out}"), lines
    return lines[0]


def test_pipeline_through_the_cli_with_resume_and_ptx(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    sizes = {"sft_train": 48, "sft_eval": 8, "rm_train": 48, "rm_eval": 8, "ppo_train": 16, "ppo_eval": 4}
    data = helpers.write_split_dir(tmp_path / "split", sizes, margin=3.0)
    unsup = helpers.write_unsup_dir(tmp_path / "unsup")
    helpers.train_tokenizer(tmp_path / "tok")
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--micro-batch-size", "8", "--lr", "1e-3",
              "--dtype", "fp32", "--quiet"]

    sft = tmp_path / "sft"
    sft_args = ["train", "sft", *common, "--model", "tiny-llama", "--tokenizer", str(tmp_path / "tok"), "--out", str(sft)]
    _run([*sft_args, "--max-steps", "2", "--save-steps", "1"])
    assert _summary(capsys, "sft", sft).startswith("sft: 2 steps, loss ")
    _run([*sft_args, "--max-steps", "4", "--resume"])
    assert _summary(capsys, "sft", sft).startswith("sft: 4 steps, loss ")
    steps = [m["step"] for m in _metrics(sft) if "loss" in m]
    assert steps == [1, 2, 3, 4]  # the resumed run continued at step 3, it did not start over
    assert [m["resumed_at"] for m in _metrics(sft) if m.get("event") == "start"] == [0, 2]
    assert AutoModelForCausalLM.from_pretrained(sft).config.model_type == "llama"

    rm = tmp_path / "rm"
    _run(["train", "reward", *common, "--model", str(sft), "--out", str(rm), "--max-steps", "2", "--grad-accum", "2",
          "--use-margin"])
    assert _summary(capsys, "reward", rm).startswith("reward: 2 steps, loss ")
    losses = [m["loss"] for m in _metrics(rm) if "loss" in m]
    assert len(losses) == 2  # 4 micro-batches, 2 optimizer steps
    # A fresh score head scores chosen and rejected alike (gap ~0), so with every pair's margin 3 the loss starts near
    # -log sigmoid(0 - 3) = log(1 + e^3) = 3.05; without the margin it would be log 2 = 0.69, with "+ margin" 0.05.
    assert abs(losses[0] - math.log1p(math.exp(3.0))) < 0.5
    assert AutoModelForSequenceClassification.from_pretrained(rm).config.num_labels == 1

    ppo = tmp_path / "ppo"
    ppo_args = ["train", "ppo", *common, "--model", str(sft), "--reward-model", str(rm), "--out", str(ppo),
                "--max-new-tokens", "6", "--unsup", str(unsup), "--ptx-coef", "0.5", "--max-seq-len", "32"]
    _run([*ppo_args, "--max-steps", "1", "--save-steps", "1"])
    assert _summary(capsys, "ppo", ppo).startswith("ppo: 1 steps, reward ")
    _run([*ppo_args, "--max-steps", "2", "--resume"])
    _summary(capsys, "ppo", ppo)
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


def test_tokenizer_trained_on_the_data_round_trips(tmp_path, capsys):
    from transformers import AutoTokenizer

    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 30, "rm_train": 10})
    _run(["train", "tokenizer", "--data", str(data), "--out", str(tmp_path / "tok"), "--vocab-size", "400", "--quiet"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    # -q silences progress, not the result: the summary line on stdout, as every verb prints it
    assert capsys.readouterr().out == f"tokenizer: {len(tokenizer)} tokens trained on {data} -> {tmp_path / 'tok'}\n"
    text = "Human: Where does the owl live ?\n\nAssistant: gladly , The owl lives in the hill ."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and 300 < len(tokenizer) <= 400
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert len(ids) < len(text) / 2  # merges were learnt from the data, not just bytes


def _prefdata(*args: str) -> subprocess.CompletedProcess:
    """``prefdata ARGS`` in a fresh process, as a user runs it: DeepSpeed is imported there for the first time."""
    return subprocess.run([sys.executable, "-m", "prefdata", *args], capture_output=True, text=True,
                          env=helpers.subprocess_env(), timeout=600)


def test_trainer_streams_results_on_stdout_diagnostics_on_stderr(tmp_path):
    import torch

    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 16, "sft_eval": 4})
    done = _prefdata("train", "tokenizer", "--data", str(data), "--out", str(tmp_path / "tok"), "--vocab-size", "300",
                     "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("tokenizer: ") and done.stdout.count("\n") == 1
    common = ["train", "sft", "--data", str(data), "--model", "tiny-gpt2", "--tokenizer", str(tmp_path / "tok"),
              "--cache-dir", str(tmp_path / "cache"), "--dtype", "fp32", "--micro-batch-size", "8", "--max-steps", "1"]

    quiet = _prefdata(*common, "--out", str(tmp_path / "quiet"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    # --quiet: the summary line alone; DeepSpeed's "Setting accelerator to CPU" reaches neither stream
    assert quiet.stdout.splitlines() == [quiet.stdout.strip()] and quiet.stdout.startswith("sft: 1 steps, loss ")
    assert "Setting accelerator" not in quiet.stdout + quiet.stderr

    loud = _prefdata(*common, "--out", str(tmp_path / "loud"))
    assert loud.returncode == 0, loud.stderr[-3000:]
    *records, summary = loud.stdout.splitlines()
    assert summary.startswith("sft: 1 steps, loss ") and summary.endswith(f"checkpoint in {tmp_path / 'loud'}")
    assert [json.loads(line)["phase"] for line in records] == ["sft"] * len(records) and len(records) >= 3  # JSON lines
    if not torch.cuda.is_available():
        assert "Setting accelerator to CPU" in loud.stderr  # a diagnostic: stderr
