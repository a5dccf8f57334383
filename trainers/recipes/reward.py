"""Phase 2, reward model: a scalar score at the last real token, trained so that chosen outscores rejected.

    python -m trainers.recipes.reward --data SPLIT_DIR --model PATH_OR_CONFIG --out DIR [--deepspeed CONFIG.json]
    deepspeed --num_gpus N -m trainers.recipes.reward …        prefdata train reward …

Loss per pair (`rl.pairwise_loss`): ``-logsigmoid(r_chosen - r_rejected - margin)`` where ``margin`` is the row's ``meta.margin`` with
``--use-margin`` and 0 otherwise. Eval on ``rm_eval``: pair accuracy (chosen scored higher) and mean score gap. The
checkpoint in ``--out`` is an ``AutoModelForSequenceClassification`` (one label) plus the tokenizer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers.components import lora, models
from trainers.components.collate import collate_pairs
from trainers.components.packing import check_packing_support, collate_packed_pairs, last_token_values
from trainers.components.rl import pairwise_loss
from trainers.components.tokens import TokenizeSpec, tokenized_phase
from trainers.runtime import checkpoints, distributed
from trainers.runtime.ds_config import zero_stage_of
from trainers.runtime.engine import engine_and_loaders, to_device
from trainers.runtime.metrics import MetricsLog, summary_line
from trainers.runtime.options import PackingOption, RunConfig, config_from_options, options_from, run_main, setting
from trainers.runtime.output import trainer_output


@dataclass
class RewardConfig(PackingOption, RunConfig):
    """`train reward`: the run options plus the margin switch and the eval batch size."""

    use_margin: bool = setting(False, "Require chosen to outscore rejected by each pair's meta.margin.")
    eval_batch_size: int = setting(8, "Per-rank batch size of the evaluation passes.")


def pair_scores(engine: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Scores of the chosen half and the rejected half of a `collate_pairs` (or packed) batch, one forward pass."""
    values = engine(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    position_ids=batch.get("position_ids"))
    return last_token_values(values, batch).chunk(2)


def evaluate(engine: Any, eval_loader: Any) -> dict[str, float]:
    """Pair accuracy, mean score gap (chosen - rejected) and mean chosen score over ``rm_eval``, summed over ranks."""
    import torch

    engine.eval()
    correct = gap = chosen_sum = pairs = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            chosen, rejected = pair_scores(engine, to_device(batch, engine.device))
            correct += float((chosen > rejected).sum())
            gap += float((chosen - rejected).sum())
            chosen_sum += float(chosen.sum())
            pairs += len(chosen)
    engine.train()
    correct, gap, chosen_sum, pairs = distributed.all_reduce_sum([correct, gap, chosen_sum, pairs])
    pairs = max(pairs, 1.0)
    return {"eval_accuracy": correct / pairs, "eval_mean_margin": gap / pairs, "eval_chosen_score": chosen_sum / pairs}


def train_reward(cfg: RewardConfig) -> dict[str, Any]:
    """Run phase 2 and return a summary (eval before/after, first/last loss, cache counts, output dir)."""
    rank, world = distributed.init_distributed(cfg.quiet)
    with trainer_output(cfg, rank, world) as work:
        return _train_reward(cfg, rank, world, work)


def _train_reward(cfg: RewardConfig, rank: int, world: int, work: Path) -> dict[str, Any]:
    """The run, writing into ``work`` (`trainer_output` publishes it as ``cfg.out``)."""
    # 1. Processes, tokenizer, cached pairs.
    distributed.set_seed(cfg.seed)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("rm", cfg.template, cfg.max_seq_len, truncation=cfg.truncate)
    train_set, eval_set = tokenized_phase(cfg, "rm", tokenizer, spec)
    if len(train_set) == 0:
        raise PrefdataError("rm_train has no usable pairs (all dropped, or no row has chosen and rejected)", file=cfg.data)

    # 2. Value model (transformer + one-output head) and its engine.
    model = models.load_value_model(cfg.model, tokenizer)
    if cfg.packing:
        check_packing_support(model.model)
    model = lora.with_lora(model, lora.LoraSettings.of(cfg))
    collate = functools.partial(collate_packed_pairs if cfg.packing else collate_pairs, pad_id=tokenizer.pad_token_id)
    engine, train_loader, eval_loader, total_steps = engine_and_loaders(
        cfg, "reward", model, train_set, eval_set, collate, rank=rank, world=world)
    resume_dir = work / "checkpoints"
    step, done_micro = checkpoints.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    log = MetricsLog(work, rank, cfg.quiet)
    log({"phase": "reward", "event": "start", "pairs_train": len(train_set), "pairs_eval": len(eval_set), "world": world,
         "zero_stage": zero_stage_of(engine), "dtype": cfg.dtype, "total_steps": total_steps, "resumed_at": step,
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
            batch = to_device(batch, engine.device)
            chosen, rejected = pair_scores(engine, batch)
            margin = batch["margin"] if cfg.use_margin else 0.0
            loss = pairwise_loss(chosen, rejected, margin)
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
                checkpoints.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 4. Evaluate, keep a resume point, write the checkpoint.
    after = evaluate(engine, eval_loader) if len(eval_set) else {}
    return checkpoints.finish_run(cfg, engine, tokenizer, work, rank, phase="reward", step=step, micro_step=micro_step,
                                  losses=losses, before=before, after=after, train_set=train_set, eval_set=eval_set,
                                  log=log)


@click.command("reward")
@options_from(RewardConfig)
def reward_command(**options: Any) -> dict[str, Any]:
    """Phase 2: train a reward model on the pairs of rm_train; eval accuracy on rm_eval."""
    result = train_reward(config_from_options(RewardConfig, options))
    if distributed.is_rank_zero():  # the summary line is the command's result: stdout, even with --quiet
        click.echo(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(reward_command)
