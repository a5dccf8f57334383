"""Phase 1, supervised fine-tuning: causal-LM loss on prompt + chosen reply, the prompt masked out.

    python -m trainers.recipes.sft --data SPLIT_DIR --model PATH_OR_CONFIG --out DIR [--deepspeed CONFIG.json]
    deepspeed --num_gpus N -m trainers.recipes.sft …        prefdata train sft …

Reads ``sft_train``/``sft_eval`` of a `prefdata split` directory through the token cache, trains with DeepSpeed (ZeRO 0-3,
bf16 or fp32), logs JSON lines, reports eval loss and perplexity before and after, and leaves a Hugging Face checkpoint
(model + tokenizer) in ``--out``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers.components import lora, models
from trainers.components.collate import IGNORE_INDEX, collate_sft
from trainers.components.packing import check_packing_support, collate_packed_sft, model_inputs
from trainers.components.tokens import TokenizeSpec, tokenized_phase
from trainers.runtime import checkpoints, distributed
from trainers.runtime.ds_config import zero_stage_of
from trainers.runtime.engine import engine_and_loaders, to_device
from trainers.runtime.metrics import MetricsLog, summary_line
from trainers.runtime.options import PackingOption, RunConfig, config_from_options, options_from, run_main, setting
from trainers.runtime.output import trainer_output


@dataclass
class SFTConfig(PackingOption, RunConfig):
    """`train sft`: the run options plus what only supervised fine-tuning has."""

    train_on_prompt: bool = setting(False, "Also learn the prompt tokens (default: loss on the reply only).")
    eval_batch_size: int = setting(8, "Per-rank batch size of the evaluation passes.")


def evaluate(engine: Any, eval_loader: Any) -> dict[str, float]:
    """Token-weighted mean loss over the eval split (summed over ranks) and its perplexity."""
    import torch

    engine.eval()
    total_loss = total_tokens = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            batch = to_device(batch, engine.device)
            tokens = float((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total_loss += float(engine(**model_inputs(batch)).loss) * tokens
            total_tokens += tokens
    engine.train()
    total_loss, total_tokens = distributed.all_reduce_sum([total_loss, total_tokens])
    loss = total_loss / max(total_tokens, 1.0)
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def train_sft(cfg: SFTConfig) -> dict[str, Any]:
    """Run phase 1 and return a summary (eval before/after, first/last train loss, cache counts, output dir)."""
    rank, world = distributed.init_distributed(cfg.quiet)
    with trainer_output(cfg, rank, world) as work:
        return _train_sft(cfg, rank, world, work)


def _train_sft(cfg: SFTConfig, rank: int, world: int, work: Path) -> dict[str, Any]:
    """The run, writing into ``work`` (`trainer_output` publishes it as ``cfg.out``)."""
    # 1. Processes, seed, tokenizer, and the token cache (built once, memory-mapped by every rank).
    distributed.set_seed(cfg.seed)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("sft", cfg.template, cfg.max_seq_len, truncation=cfg.truncate, train_on_prompt=cfg.train_on_prompt)
    train_set, eval_set = tokenized_phase(cfg, "sft", tokenizer, spec)
    if len(train_set) == 0:
        raise PrefdataError("sft_train has no usable rows (all dropped or none with a chosen reply)", file=cfg.data)

    # 2. Model and DeepSpeed engine; the loaders pad each batch to its longest row, or pack it (--packing).
    model = models.load_causal_lm(cfg.model, tokenizer)
    if cfg.packing:
        check_packing_support(model)
    model = lora.with_lora(model, lora.LoraSettings.of(cfg))
    collate = functools.partial(collate_packed_sft if cfg.packing else collate_sft, pad_id=tokenizer.pad_token_id)
    engine, train_loader, eval_loader, total_steps = engine_and_loaders(
        cfg, "sft", model, train_set, eval_set, collate, rank=rank, world=world)
    resume_dir = work / "checkpoints"
    step, done_micro = checkpoints.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    log = MetricsLog(work, rank, cfg.quiet)
    log({"phase": "sft", "event": "start", "rows_train": len(train_set), "rows_eval": len(eval_set), "world": world,
         "zero_stage": zero_stage_of(engine), "dtype": cfg.dtype, "total_steps": total_steps, "resumed_at": step,
         "cache": {"train": train_set.info["counts"], "eval": eval_set.info["counts"]}})
    before = evaluate(engine, eval_loader) if len(eval_set) else {}
    if before:
        log({"phase": "sft", "step": step, **before})

    # 3. Train: forward, backward, step; micro-batches already done before a resume are skipped, not re-trained.
    losses: list[float] = []
    micro_step = 0
    bar = progress(range(total_steps), desc="sft", total=total_steps, quiet=cfg.quiet or rank != 0, unit="step")
    bar.update(step)
    for epoch in range(cfg.epochs):
        train_loader.sampler.set_epoch(epoch)
        for batch in train_loader:
            if step >= total_steps:
                break
            micro_step += 1
            if micro_step <= done_micro:
                continue
            loss = engine(**model_inputs(to_device(batch, engine.device))).loss
            engine.backward(loss)
            engine.step()
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            log({"phase": "sft", "step": step, "epoch": epoch, "loss": loss.item(), "lr": engine.get_lr()[0]})
            if cfg.save_steps and step % cfg.save_steps == 0:
                checkpoints.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 4. Evaluate, keep a resume point, write the Hugging Face checkpoint.
    after = evaluate(engine, eval_loader) if len(eval_set) else {}
    return checkpoints.finish_run(cfg, engine, tokenizer, work, rank, phase="sft", step=step, micro_step=micro_step,
                                  losses=losses, before=before, after=after, train_set=train_set, eval_set=eval_set,
                                  log=log)


@click.command("sft")
@options_from(SFTConfig)
def sft_command(**options: Any) -> dict[str, Any]:
    """Phase 1: supervised fine-tuning on prompt + chosen reply of sft_train."""
    result = train_sft(config_from_options(SFTConfig, options))
    if distributed.is_rank_zero():  # the summary line is the command's result: stdout, even with --quiet
        click.echo(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(sft_command)
