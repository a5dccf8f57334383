"""Phase 2, reward model: a scalar score at the last real token, trained so that chosen outscores rejected.

    python -m trainers.reward --data SPLIT_DIR --model PATH_OR_CONFIG --out DIR [--deepspeed CONFIG.json]
    deepspeed --num_gpus N -m trainers.reward …        prefdata train reward …

Loss per pair: ``-logsigmoid(r_chosen - r_rejected - margin)`` where ``margin`` is the row's ``meta.margin`` with
``--use-margin`` and 0 otherwise. Eval on ``rm_eval``: pair accuracy (chosen scored higher) and mean score gap. The
checkpoint in ``--out`` is an ``AutoModelForSequenceClassification`` (one label) plus the tokenizer.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers import common, models
from trainers.data import TokenizeSpec, collate_pairs, tokenized


@dataclass
class RewardConfig(common.RunConfig):
    use_margin: bool = False
    eval_batch_size: int = 8


def pair_scores(engine: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Scores of the chosen half and the rejected half of a `collate_pairs` batch, one forward pass."""
    values = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    scores = models.last_token_scores(values, batch["attention_mask"])
    return scores.chunk(2)


def pair_loss(chosen: Any, rejected: Any, margin: Any) -> Any:
    import torch.nn.functional as F

    return -F.logsigmoid(chosen - rejected - margin).mean()


def evaluate(engine: Any, eval_loader: Any) -> dict[str, float]:
    """Pair accuracy, mean score gap (chosen - rejected) and mean chosen score over ``rm_eval``, summed over ranks."""
    import torch

    engine.eval()
    correct = gap = chosen_sum = pairs = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            chosen, rejected = pair_scores(engine, common.to_device(batch, engine.device))
            correct += float((chosen > rejected).sum())
            gap += float((chosen - rejected).sum())
            chosen_sum += float(chosen.sum())
            pairs += len(chosen)
    engine.train()
    correct, gap, chosen_sum, pairs = common.all_reduce_sum([correct, gap, chosen_sum, pairs])
    pairs = max(pairs, 1.0)
    return {"eval_accuracy": correct / pairs, "eval_mean_margin": gap / pairs, "eval_chosen_score": chosen_sum / pairs}


def train_reward(cfg: RewardConfig) -> dict[str, Any]:
    """Run phase 2 and return a summary (eval before/after, first/last loss, cache counts, output dir)."""
    # 1. Processes, tokenizer, cached pairs.
    rank, world = common.init_distributed()
    common.set_seed(cfg.seed)
    out = Path(cfg.out)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("reward", cfg.template, cfg.max_seq_len, truncation=cfg.truncate)
    train_set = tokenized(cfg.data, "rm_train", tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    eval_set = tokenized(cfg.data, "rm_eval", tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    if len(train_set) == 0:
        raise PrefdataError("rm_train has no usable pairs (all dropped, or no row has chosen and rejected)", file=cfg.data)

    # 2. Value model (transformer + one-output head) and its engine.
    model = models.load_value_model(cfg.model, tokenizer)
    collate = functools.partial(collate_pairs, pad_id=tokenizer.pad_token_id)
    engine, train_loader, eval_loader, total_steps = common.engine_and_loaders(
        cfg, "reward", model, train_set, eval_set, collate, rank=rank, world=world)
    resume_dir = out / "checkpoints"
    step, done_micro = common.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    log = common.MetricsLog(out, rank, cfg.quiet)
    log({"phase": "reward", "event": "start", "pairs_train": len(train_set), "pairs_eval": len(eval_set), "world": world,
         "zero_stage": common.zero_stage_of(engine), "dtype": cfg.dtype, "total_steps": total_steps, "resumed_at": step,
         "cache": {"train": train_set.info["counts"], "eval": eval_set.info["counts"]}})
    before = evaluate(engine, eval_loader) if len(eval_set) else {}
    if before:
        log({"phase": "reward", "step": step, **before})

    # 3. Train on pairs: chosen and rejected scored in one forward pass.
    losses: list[float] = []
    micro_step = 0
    bar = progress(range(total_steps), desc="reward", total=total_steps, quiet=cfg.quiet or rank != 0, unit="step")
    bar.update(step)
    for epoch in range(cfg.epochs):
        train_loader.sampler.set_epoch(epoch)
        for batch in train_loader:
            if step >= total_steps:
                break
            micro_step += 1
            if micro_step <= done_micro:
                continue
            batch = common.to_device(batch, engine.device)
            chosen, rejected = pair_scores(engine, batch)
            margin = batch["margin"] if cfg.use_margin else 0.0
            loss = pair_loss(chosen, rejected, margin)
            engine.backward(loss)
            engine.step()
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            log({"phase": "reward", "step": step, "epoch": epoch, "loss": loss.item(),
                 "accuracy": float((chosen > rejected).float().mean()), "lr": engine.get_lr()[0]})
            if cfg.save_steps and step % cfg.save_steps == 0:
                common.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 4. Evaluate, keep a resume point, write the checkpoint.
    after = evaluate(engine, eval_loader) if len(eval_set) else {}
    common.save_resume_point(engine, resume_dir, step, micro_step)
    common.save_hf(engine, tokenizer, out, rank)
    summary = {"phase": "reward", "event": "end", "steps": step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None, "eval_before": before, "eval_after": after, "out": str(out)}
    log(summary)
    return {**summary, "cache_train": train_set.info, "cache_eval": eval_set.info, "config": asdict(cfg)}


@click.command("reward")
@common.common_options
@click.option("--use-margin", is_flag=True, help="Subtract meta.margin of each pair inside the loss.")
@click.option("--eval-batch-size", type=int, default=8, show_default=True)
def reward_command(**options: Any) -> None:
    """Phase 2: train a reward model on the pairs of rm_train; eval accuracy on rm_eval."""
    cfg = common.config_from_options(RewardConfig, options)
    result = train_reward(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # the summary line is printed even with --quiet
        click.echo(common.summary_line(result), err=True)


if __name__ == "__main__":
    common.run_main(reward_command)
