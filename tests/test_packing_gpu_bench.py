"""`bench/gpu.py`: the FLOP count by hand, and its ``--smoke`` mode run through reward and DPO (packed) and PPO on CPU, so the
plumbing a lent GPU runs (recipes under the meter, the table) is known to work before any GPU time is spent."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gpu  # noqa: E402
import trainer_helpers as helpers  # noqa: E402


def test_flops_by_hand():
    # N=10, L=2, d=4, sequences of 3 and 5 tokens: 2*10*8 + 4*2*4*(9+25) = 160 + 1088
    assert gpu.forward_flops(10, 2, 4, [3, 5]) == 1248.0
    assert gpu.train_flops(10, 2, 4, [3, 5]) == 3 * 1248.0


def test_sequence_lengths_of_padded_and_packed_batches():
    pad = 0
    padded_ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = (padded_ids != pad).long()
    assert gpu.sequence_lengths(padded_ids, mask, None, pad) == [3, 2]
    packed_ids = torch.tensor([[5, 6, 7, 8], [9, 4, 0, 0]])
    positions = torch.tensor([[0, 1, 2, 0], [0, 1, 0, 1]])  # [5 6 7][8] / [9 4][pad pad]
    assert gpu.sequence_lengths(packed_ids, None, positions, pad) == [3, 1, 2]


def test_linear_weights_count_the_matmuls_not_the_embedding(tmp_path):
    from trainers.components import models

    helpers.train_tokenizer(tmp_path / "tok")
    tokenizer = models.load_tokenizer(str(tmp_path / "tok"), "tiny-llama")
    model = models.load_causal_lm("tiny-llama", tokenizer)
    d, kv, mlp = 64, 2 * (64 // 4), 176  # hidden, key/value width (2 KV heads of 16), MLP width
    per_layer = d * d + d * kv + d * kv + d * d + 3 * d * mlp
    assert gpu.linear_weights(model) == 2 * per_layer + len(tokenizer) * d


def test_smoke_run_measures_packed_reward_and_dpo_and_ppo(tmp_path, monkeypatch, capsys):
    helpers.single_process_env(monkeypatch)
    results = gpu.main(["--smoke", "--phases", "reward,dpo,ppo", "--zero", "2", "--packing", "on",
                        "--work", str(tmp_path / "work")])
    assert [(r["run"].phase, r["run"].packing) for r in results] == [("reward", True), ("dpo", True), ("ppo", False)]
    for r in results:
        assert r["steps"] == 2 and r["tokens_per_s"] > 0 and math.isfinite(r["flops_per_s"]) and r["flops_per_s"] > 0
    out = capsys.readouterr().out
    assert "| phase | ZeRO | packing | timed steps | tokens/s | TFLOP/s | MFU | peak GiB |" in out
    assert "6*N*tokens + 12*L*d*sum(n^2)" in out
