"""Two ranks (torchrun, gloo) on one token cache: built once, memory-mapped by both; ZeRO-2 SFT and ZeRO-3 PPO."""

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


def test_two_ranks_share_one_cache_built_once(tmp_path):
    sizes = {"sft_train": 48, "sft_eval": 8, "ppo_train": 32, "ppo_eval": 4}
    helpers.write_split_dir(tmp_path / "split", sizes)
    helpers.train_tokenizer(tmp_path / "tok")
    env = helpers.subprocess_env()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(helpers.free_port()), str(REPO / "tests" / "dist_driver.py"), str(tmp_path)]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # One rank built each entry, the other waited on the lock and mapped the finished file: each rank says for itself
    # whether it built, and the rank that says so is the one the entry records as its builder.
    assert sorted(r["sft_built"] for r in ranks) == [False, True]
    assert sorted(r["ppo_built"] for r in ranks) == [False, True]
    builder = next(r["rank"] for r in ranks if r["sft_built"])
    assert all(r["sft_recorded_builder"] == str(builder) for r in ranks)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no half-built leftovers
    for phase in ("sft", "ppo"):
        starts = [json.loads(line) for line in (tmp_path / phase / "metrics.jsonl").read_text().splitlines()][:1]
        assert starts[0]["world"] == 2
    entries = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert entries == ["ppo-ppo_train", "sft-sft_eval", "sft-sft_train"]  # one entry per split, no duplicates
    assert all(r["sft_steps"] == 3 and r["ppo_steps"] == 2 for r in ranks)
    assert ranks[0]["ppo_kls"] == ranks[1]["ppo_kls"]  # logged metrics are reduced over both ranks
    start = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()][0]
    assert start["world"] == 2 and start["zero_stage"] == 3
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "ppo").config.model_type == "gpt2"
