"""Run by `test_distributed.py` under torchrun (2 ranks, gloo): SFT with ZeRO-2, then PPO with ZeRO-3 (synced
generation) on the SFT actor, recording which rank built each token cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from trainers.recipes.ppo import PPOConfig, train_ppo  # noqa: E402
from trainers.recipes.sft import sft_command  # noqa: E402


def main(root: Path) -> None:
    rank = int(os.environ["RANK"])
    common = {"data": str(root / "split"), "cache_dir": str(root / "cache"), "dtype": "fp32", "micro_batch_size": 8,
              "lr": 1e-3, "quiet": True}
    # Phase 1 through the command line, as `deepspeed -m trainers.recipes.sft` calls it (with --local_rank); the
    # command returns its result to a caller that runs it with standalone_mode=False.
    sft = sft_command.main(["--data", common["data"], "--cache-dir", common["cache_dir"], "--model", "tiny-gpt2",
                            "--tokenizer", str(root / "tok"), "--out", str(root / "sft"), "--zero-stage", "2",
                            "--dtype", "fp32", "--micro-batch-size", "8", "--max-steps", "3", "--quiet",
                            f"--local_rank={os.environ['LOCAL_RANK']}"], standalone_mode=False)
    from transformers import AutoTokenizer

    target = AutoTokenizer.from_pretrained(root / "tok").convert_tokens_to_ids(helpers.GOOD)
    ppo = train_ppo(PPOConfig(model=str(root / "sft"), critic_model="tiny-gpt2", out=str(root / "ppo"), zero_stage=3,
                              max_steps=2, max_new_tokens=6, **common), reward_model=helpers.TargetTokenReward(target))
    # The entry's folder, not its `.lock` file beside it (same name + ".lock", which a bare glob also matches).
    entries = [p for p in (root / "cache").glob("sft-sft_train-*") if p.is_dir()]
    assert len(entries) == 1, entries
    recorded = json.loads((entries[0] / "info.json").read_text())["built_by"]
    record = {"rank": rank, "sft_steps": sft["steps"], "sft_built": sft["cache_built"],
              "sft_recorded_builder": recorded["rank"], "ppo_built": ppo["cache_built"], "ppo_steps": ppo["steps"],
              "ppo_kls": ppo["kls"]}
    (root / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
