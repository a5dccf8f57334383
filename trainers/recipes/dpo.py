"""Direct preference optimisation: the policy learns from the pairs of ``rm_train`` with no reward model and no sampling.

    python -m trainers.recipes.dpo --data SPLIT_DIR --model SFT_DIR --out DIR [--loss dpo|ipo|simpo] [--ref-model DIR]
    deepspeed --num_gpus N -m trainers.recipes.dpo …        prefdata train dpo …

Same token cache (the ``rm`` entries the reward model reads), engine set-up and checkpoint format as the other recipes.
``--loss`` (`trainers.components.preference`): ``dpo`` (sigmoid, ``--beta``, ``--label-smoothing``), ``ipo`` or
``simpo`` (reference-free: length-normalised log-probs and the target margin ``--simpo-gamma``).

The reference model is frozen, so its log-probs are computed once per example, before the first step, and kept: with
``--ref-model`` from that model (loaded, used, released), otherwise from ``--model`` itself (the policy's weights
before they change; under LoRA the base with the adapter off). No second copy stays in memory while training.
Eval on ``rm_eval``: preference accuracy (chosen reward above rejected) and mean reward margin, before and after.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers.components import lora, models, packing, preference
from trainers.components.collate import collate_sft
from trainers.components.tokens import TokenizeSpec, tokenized_phase
from trainers.runtime import checkpoints, distributed
from trainers.runtime.ds_config import frozen_config, zero_stage_of
from trainers.runtime.engine import engine_and_loaders, loader, to_device
from trainers.runtime.metrics import MetricsLog, summary_line
from trainers.runtime.options import PackingOption, RunConfig, config_from_options, options_from, run_main, setting
from trainers.runtime.output import trainer_output


@dataclass
class DPOConfig(PackingOption, RunConfig):
    """`train dpo`: the run options plus the loss, its hyper-parameters and the reference model."""

    loss: str = setting("dpo", "Preference loss.", choices=preference.LOSSES)
    beta: float | None = setting(None, "Inverse temperature; default 0.1 (dpo, ipo) or 2.0 (simpo).")
    label_smoothing: float = setting(0.0, "Share of pairs assumed mislabelled (dpo, simpo).")
    simpo_gamma: float = setting(0.5, "SimPO's target reward margin.")
    ref_model: str | None = setting(None, "Frozen reference model dir; default: --model as it is before training.")
    eval_batch_size: int = setting(8, "Per-rank batch size of the evaluation passes.")


def reduce_over_ranks(tensor: Any) -> Any:
    """``tensor`` summed over every rank (each has scored its own examples)."""
    import torch

    summed = distributed.all_reduce_sum(tensor.flatten().tolist())
    return torch.tensor(summed, dtype=tensor.dtype, device=tensor.device).view_as(tensor)


def reference_forward(cfg: RunConfig, engine: Any, tokenizer: Any) -> Any:
    """What scores the reference: a frozen engine of ``--ref-model`` (sharded under ZeRO-3; released once the log-probs
    are cached), the policy with its adapter off, or the untouched policy itself."""
    import deepspeed

    ref_model = getattr(cfg, "ref_model", None)
    if ref_model:
        reference = models.load_causal_lm(ref_model, tokenizer)
        models.disable_dropout(reference)
        reference = reference.eval().requires_grad_(False)
        return deepspeed.initialize(model=reference, config=frozen_config(cfg, zero_stage_of(engine)))[0]
    return lora.AdapterDisabled(engine) if lora.is_lora(engine.module) else engine


def cached_reference(cfg: RunConfig, engine: Any, tokenizer: Any, loaders: list[Any]) -> list[Any]:
    """The reference log-probs of every example each loader (unshuffled, over an `Indexed` set) yields, computed once,
    before the first step and before a resume point is loaded (so ``engine`` still holds ``--model``'s weights)."""
    forward = reference_forward(cfg, engine, tokenizer)
    engine.eval()
    cached = []
    for batches in loaders:
        on_device = (to_device(batch, engine.device) for batch in batches)
        cached.append(preference.reference_logprobs(forward, on_device, len(batches.dataset), reduce_over_ranks)
                      if len(batches.dataset) else None)
    engine.train()
    return cached


def pair_losses(cfg: DPOConfig, engine: Any, batch: dict[str, Any], reference: Any | None) -> tuple[Any, Any, Any]:
    """Per-pair losses and (chosen, rejected) rewards of a `collate_preference_pairs` batch, one forward pass."""
    logps, tokens = preference.batch_logprobs(engine, batch)
    ref = reference[batch["index"]].to(logps.device).T.unbind(0) if reference is not None else None
    return preference.preference_loss(cfg.loss, logps.chunk(2), ref, tokens.chunk(2), beta=cfg.beta,
                                      label_smoothing=cfg.label_smoothing, gamma=cfg.simpo_gamma)


def evaluate(cfg: DPOConfig, engine: Any, eval_loader: Any, reference: Any | None) -> dict[str, float]:
    """Preference accuracy, mean reward margin and mean loss over ``rm_eval``, summed over ranks."""
    import torch

    engine.eval()
    correct = margin = loss = pairs = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            losses, chosen, rejected = pair_losses(cfg, engine, to_device(batch, engine.device), reference)
            correct += float((chosen > rejected).sum())
            margin += float((chosen - rejected).sum())
            loss += float(losses.sum())
            pairs += len(losses)
    engine.train()
    correct, margin, loss, pairs = distributed.all_reduce_sum([correct, margin, loss, pairs])
    pairs = max(pairs, 1.0)
    return {"eval_accuracy": correct / pairs, "eval_mean_margin": margin / pairs, "eval_loss": loss / pairs}


def train_dpo(cfg: DPOConfig) -> dict[str, Any]:
    """Run DPO (or IPO, SimPO) and return a summary (eval before/after, first/last loss, cache counts, output dir)."""
    if cfg.beta is None:
        cfg.beta = preference.DEFAULT_BETA[cfg.loss]
    if cfg.beta <= 0 or not 0.0 <= cfg.label_smoothing < 0.5:
        raise PrefdataError("--beta must be positive and --label-smoothing in [0, 0.5)", field="beta")
    if cfg.ref_model:
        models.check_model_spec(cfg.ref_model, "ref_model")
    rank, world = distributed.init_distributed(cfg.quiet)
    with trainer_output(cfg, rank, world) as work:
        return _train_dpo(cfg, rank, world, work)


def _train_dpo(cfg: DPOConfig, rank: int, world: int, work: Path) -> dict[str, Any]:
    """The run, writing into ``work`` (`trainer_output` publishes it as ``cfg.out``)."""
    # 1. Processes, tokenizer, the reward model's cached pairs (with each side's prompt length), indexed.
    distributed.set_seed(cfg.seed)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("rm", cfg.template, cfg.max_seq_len, truncation=cfg.truncate)
    train_set, eval_set = tokenized_phase(cfg, "rm", tokenizer, spec)
    if len(train_set) == 0:
        raise PrefdataError("rm_train has no usable pairs (all dropped, or no row has chosen and rejected)", file=cfg.data)

    # 2. Policy (dropout off, so the reference pass and training see one function) and its engine.
    model = models.load_causal_lm(cfg.model, tokenizer)
    models.disable_dropout(model)
    if cfg.packing:
        packing.check_packing_support(model)
    model = lora.with_lora(model, lora.LoraSettings.of(cfg))
    collate = functools.partial(preference.collate_preference_pairs, pad_id=tokenizer.pad_token_id,
                                rows=packing.collate_packed_sft if cfg.packing else collate_sft)
    train_data, eval_data = preference.Indexed(train_set), preference.Indexed(eval_set)
    engine, train_loader, eval_loader, total_steps = engine_and_loaders(
        cfg, "dpo", model, train_data, eval_data, collate, rank=rank, world=world)

    # 3. Reference log-probs, once per example, before any step (and before a resume point is loaded).
    ref_train = ref_eval = None
    if cfg.loss != "simpo":
        fixed = loader(train_data, cfg.eval_batch_size, collate, shuffle=False, seed=cfg.seed, rank=rank, world=world)
        ref_train, ref_eval = cached_reference(cfg, engine, tokenizer, [fixed, eval_loader])
    resume_dir = work / "checkpoints"
    step, done_micro = checkpoints.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    log = MetricsLog(work, rank, cfg.quiet)
    log({"phase": "dpo", "event": "start", "loss_type": cfg.loss, "beta": cfg.beta, "pairs_train": len(train_set),
         "pairs_eval": len(eval_set), "world": world, "zero_stage": zero_stage_of(engine), "dtype": cfg.dtype,
         "total_steps": total_steps, "resumed_at": step, "lora_rank": cfg.lora_rank,
         "reference": cfg.ref_model or ("none" if cfg.loss == "simpo" else "model"),
         "cache": {"train": train_set.info["counts"], "eval": eval_set.info["counts"]}})
    before = evaluate(cfg, engine, eval_loader, ref_eval) if len(eval_set) else {}
    if before:
        log({"phase": "dpo", "step": step, **before})

    # 4. Train on pairs: chosen and rejected in one forward pass, against the cached reference.
    losses: list[float] = []
    micro_step = 0
    bar = progress(range(total_steps), desc="dpo", total=total_steps, quiet=cfg.quiet or rank != 0, unit="step")
    bar.update(step)
    for epoch in range(cfg.epochs):
        train_loader.sampler.set_epoch(epoch)
        for batch in train_loader:
            if step >= total_steps:
                break
            micro_step += 1
            if micro_step <= done_micro:
                continue
            pair_loss, chosen, rejected = pair_losses(cfg, engine, to_device(batch, engine.device), ref_train)
            loss = pair_loss.mean()
            engine.backward(loss)
            engine.step()
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            log({"phase": "dpo", "step": step, "epoch": epoch, "loss": loss.item(),
                 "accuracy": float((chosen > rejected).float().mean()), "margin": float((chosen - rejected).mean()),
                 "chosen_reward": float(chosen.mean()), "rejected_reward": float(rejected.mean()),
                 "lr": engine.get_lr()[0]})
            if cfg.save_steps and step % cfg.save_steps == 0:
                checkpoints.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 5. Evaluate, keep a resume point, write the checkpoint (the policy, a causal LM).
    after = evaluate(cfg, engine, eval_loader, ref_eval) if len(eval_set) else {}
    return checkpoints.finish_run(cfg, engine, tokenizer, work, rank, phase="dpo", step=step, micro_step=micro_step,
                                  losses=losses, before=before, after=after, train_set=train_set, eval_set=eval_set,
                                  log=log)


@click.command("dpo")
@options_from(DPOConfig)
def dpo_command(**options: Any) -> dict[str, Any]:
    """Direct preference optimisation (DPO, IPO or SimPO) of a policy on the pairs of rm_train; eval on rm_eval."""
    result = train_dpo(config_from_options(DPOConfig, options))
    if distributed.is_rank_zero():  # the summary line is the command's result: stdout, even with --quiet
        click.echo(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(dpo_command)
