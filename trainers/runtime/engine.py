"""Data loaders and the DeepSpeed engine of a supervised phase, set up together because each needs the other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainers.runtime.ds_config import deepspeed_config


def loader(dataset: Any, batch_size: int, collate: Callable, *, shuffle: bool, seed: int, rank: int, world: int) -> Any:
    """A DataLoader over a memory-mapped `TokenCache`, each rank reading its own shard (same count on every rank)."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)


def batch_shape(cfg: Any, phase: str) -> tuple[int, int]:
    """(micro-batch size, gradient accumulation steps) after the flags are applied to the phase's DeepSpeed config."""
    probe = deepspeed_config(cfg, phase, total_steps=1)
    return probe["train_micro_batch_size_per_gpu"], probe["gradient_accumulation_steps"]


def engine_and_loaders(cfg: Any, phase: str, model: Any, train_set: Any, eval_set: Any, collate: Callable, *, rank: int,
                       world: int) -> tuple[Any, Any, Any, int]:
    """The DeepSpeed engine for ``model`` and the train/eval loaders of one supervised phase (sft, reward).

    The number of optimizer steps (epochs x batches / accumulation, capped by ``--max-steps``) is known only once the
    loader exists, and the learning-rate schedule in the DeepSpeed config needs it: hence one function for both.
    """
    import deepspeed

    micro, accum = batch_shape(cfg, phase)
    train_loader = loader(train_set, micro, collate, shuffle=True, seed=cfg.seed, rank=rank, world=world)
    eval_loader = loader(eval_set, cfg.eval_batch_size, collate, shuffle=False, seed=cfg.seed, rank=rank, world=world)
    total_steps = min(cfg.max_steps or 10**12, max(len(train_loader) // accum, 1) * cfg.epochs)
    config = deepspeed_config(cfg, phase, total_steps=total_steps)
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
                                      config=config)
    return engine, train_loader, eval_loader, total_steps


def to_device(batch: dict[str, Any], dev: Any) -> dict[str, Any]:
    return {k: v.to(dev) for k, v in batch.items()}
