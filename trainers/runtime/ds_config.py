"""The DeepSpeed config of a run: the shipped (or given) JSON with the command-line flags applied on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from trainers.runtime.options import RunConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def deepspeed_config(cfg: RunConfig, phase: str, *, total_steps: int, lr: float | None = None) -> dict:
    """``--deepspeed FILE`` (default ``configs/<phase>.json``) overridden by the flags; ``lr`` beats ``--lr`` (the
    critic's own rate); ``total_steps`` sizes the warm-up/decay schedule."""
    path = Path(cfg.deepspeed) if cfg.deepspeed else CONFIG_DIR / f"{phase}.json"
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PrefdataError(f"unreadable DeepSpeed config: {e}", file=str(path)) from None
    if cfg.micro_batch_size is not None:
        ds["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
    if cfg.grad_accum is not None:
        ds["gradient_accumulation_steps"] = cfg.grad_accum
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from micro batch x accumulation x world
    ds.setdefault("zero_optimization", {})
    if cfg.zero_stage is not None:
        ds["zero_optimization"]["stage"] = cfg.zero_stage
    if ds.get("fp16", {}).get("enabled"):
        raise PrefdataError("fp16 is not supported; use --dtype bf16 or fp32", file=str(path))
    ds["bf16"] = {"enabled": cfg.dtype == "bf16"}
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {}})
    optimizer["params"]["torch_adam"] = True  # never JIT-compile DeepSpeed's fused Adam
    if lr is not None or cfg.lr is not None:
        optimizer["params"]["lr"] = lr if lr is not None else cfg.lr
    ds.pop("scheduler", None)
    if cfg.warmup_steps > 0:  # linear warm-up, then linear decay to 0; without warm-up the rate stays constant
        ds["scheduler"] = {
            "type": "WarmupDecayLR",
            "params": {
                "warmup_min_lr": 0.0,
                "warmup_max_lr": optimizer["params"].get("lr", 1e-5),
                "warmup_num_steps": cfg.warmup_steps,
                "total_num_steps": max(total_steps, cfg.warmup_steps + 1),
                "warmup_type": "linear",
            },
        }
    ds["steps_per_print"] = 10**9
    ds["wall_clock_breakdown"] = False
    return ds


def frozen_config(cfg: RunConfig, zero_stage: int) -> dict:
    """Inference-only engines (reference model, reward model): sharded under ZeRO-3, plain otherwise."""
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size or 1,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "zero_optimization": {"stage": 3 if zero_stage == 3 else 0},
        "steps_per_print": 10**9,
    }


def zero_stage_of(engine: Any) -> int:
    return int(engine.zero_optimization_stage())
