"""Phase 1, supervised fine-tuning: causal-LM loss on prompt + chosen reply, the prompt masked out.

    python -m trainers.sft --data SPLIT_DIR --model PATH_OR_CONFIG --out DIR [--deepspeed CONFIG.json]
    deepspeed --num_gpus N -m trainers.sft …        prefdata train sft …

Reads ``sft_train``/``sft_eval`` of a `prefdata split` directory through the token cache, trains with DeepSpeed (ZeRO 0-3,
bf16 or fp32), logs JSON lines, reports eval loss and perplexity before and after, and leaves a Hugging Face checkpoint
(model + tokenizer) in ``--out``.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers import common, models
from trainers.data import TokenizeSpec, collate_sft, tokenized


@dataclass
class SFTConfig(common.RunConfig):
    train_on_prompt: bool = False
    eval_batch_size: int = 8


def evaluate(engine: Any, eval_loader: Any) -> dict[str, float]:
    """Token-weighted mean loss over the eval split (summed over ranks) and its perplexity."""
    import torch

    engine.eval()
    total_loss = total_tokens = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            batch = common.to_device(batch, engine.device)
            tokens = float((batch["labels"][:, 1:] != -100).sum())
            total_loss += float(engine(**batch).loss) * tokens
            total_tokens += tokens
    engine.train()
    total_loss, total_tokens = common.all_reduce_sum([total_loss, total_tokens])
    loss = total_loss / max(total_tokens, 1.0)
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def train_sft(cfg: SFTConfig) -> dict[str, Any]:
    """Run phase 1 and return a summary (eval before/after, first/last train loss, cache counts, output dir)."""
    # 1. Processes, seed, tokenizer, and the token cache (built once, memory-mapped by every rank).
    rank, world = common.init_distributed()
    common.set_seed(cfg.seed)
    out = Path(cfg.out)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("sft", cfg.template, cfg.max_seq_len, truncation=cfg.truncate, train_on_prompt=cfg.train_on_prompt)
    train_set = tokenized(cfg.data, "sft_train", tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    eval_set = tokenized(cfg.data, "sft_eval", tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    if len(train_set) == 0:
        raise PrefdataError("sft_train has no usable rows (all dropped or none with a chosen reply)", file=cfg.data)

    # 2. Model and DeepSpeed engine; the loaders pad each batch to its longest row.
    model = models.load_causal_lm(cfg.model, tokenizer)
    collate = functools.partial(collate_sft, pad_id=tokenizer.pad_token_id)
    engine, train_loader, eval_loader, total_steps = common.engine_and_loaders(
        cfg, "sft", model, train_set, eval_set, collate, rank=rank, world=world)
    resume_dir = out / "checkpoints"
    step, done_micro = common.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    log = common.MetricsLog(out, rank, cfg.quiet)
    log({"phase": "sft", "event": "start", "rows_train": len(train_set), "rows_eval": len(eval_set), "world": world,
         "zero_stage": common.zero_stage_of(engine), "dtype": cfg.dtype, "total_steps": total_steps, "resumed_at": step,
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
            loss = engine(**common.to_device(batch, engine.device)).loss
            engine.backward(loss)
            engine.step()
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            log({"phase": "sft", "step": step, "epoch": epoch, "loss": loss.item(), "lr": engine.get_lr()[0]})
            if cfg.save_steps and step % cfg.save_steps == 0:
                common.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 4. Evaluate, keep a resume point, write the Hugging Face checkpoint.
    after = evaluate(engine, eval_loader) if len(eval_set) else {}
    common.save_resume_point(engine, resume_dir, step, micro_step)
    common.save_hf(engine, tokenizer, out, rank)
    summary = {"phase": "sft", "event": "end", "steps": step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None, "eval_before": before, "eval_after": after, "out": str(out)}
    log(summary)
    return {**summary, "cache_train": train_set.info, "cache_eval": eval_set.info, "cache_built": train_set.built,
            "config": asdict(cfg)}


@click.command("sft")
@common.common_options
@click.option("--train-on-prompt", is_flag=True, help="Also learn the prompt tokens (default: loss on the reply only).")
@click.option("--eval-batch-size", type=int, default=8, show_default=True)
def sft_command(**options: Any) -> None:
    """Phase 1: supervised fine-tuning on prompt + chosen reply of sft_train."""
    cfg = common.config_from_options(SFTConfig, options)
    result = train_sft(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # the summary line is printed even with --quiet
        click.echo(common.summary_line(result), err=True)


if __name__ == "__main__":
    common.run_main(sft_command)
