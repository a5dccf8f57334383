"""DPO on two ranks (torchrun, gloo) under ZeRO-3: the reference log-probs each rank computed for its own pairs are
shared, the eval is reduced over both ranks, and the gathered checkpoint reloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402


def test_dpo_two_ranks_zero3(tmp_path):
    helpers.write_split_dir(tmp_path / "split", {"rm_train": 64, "rm_eval": 16})
    helpers.train_tokenizer(tmp_path / "tok")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(helpers.free_port()), "-m", "trainers.recipes.dpo", "--data",
               str(tmp_path / "split"), "--model", "tiny-gpt2", "--tokenizer", str(tmp_path / "tok"), "--out",
               str(tmp_path / "dpo"), "--cache-dir", str(tmp_path / "cache"), "--zero-stage", "3", "--dtype", "fp32",
               "--micro-batch-size", "8", "--lr", "3e-3", "--quiet"]
    done = subprocess.run(command, env=helpers.subprocess_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("dpo: 4 steps") == 1  # 64 pairs / (8 per rank x 2 ranks); only rank 0 reports

    metrics = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    start, end = metrics[0], metrics[-1]
    assert (start["world"], start["zero_stage"]) == (2, 3)
    assert end["eval_before"]["eval_mean_margin"] == 0.0  # both ranks' reference = the untouched policy
    assert end["eval_after"]["eval_accuracy"] > 0.5 and end["eval_after"]["eval_mean_margin"] > 0.0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "dpo").config.model_type == "gpt2"
