"""KTO: the policy learns from replies labelled desirable or undesirable, one at a time, with no pairing needed.

    python -m trainers.recipes.kto --data SPLIT_DIR --model SFT_DIR --out DIR [--ref-model DIR]
    deepspeed --num_gpus N -m trainers.recipes.kto …        prefdata train kto …

Reads ``rm_train``/``rm_eval`` through the ``kto`` token cache (`trainers.components.tokens`): an unpaired row
(``label`` set, contract ``prefdata.preference/2``) is one labelled reply; a pair gives its chosen reply as desirable
and its rejected reply as undesirable, as KTO reads paired data. The loss (`preference.kto_loss`) weighs the two kinds
with ``--desirable-weight``/``--undesirable-weight`` around ``z0``, an estimate of KL(policy || reference) from each
prompt paired with another example's reply. The reference is handled as in DPO (`trainers.recipes.dpo`): frozen, its
log-probs computed once per example. Eval on ``rm_eval``: mean reward (``beta`` x log-ratio) of desirable and of
undesirable replies, and the gap between them (logged as ``eval_mean_margin``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers.components import lora, models, preference
from trainers.components.tokens import TokenizeSpec, tokenized_phase
from trainers.recipes.dpo import cached_reference
from trainers.runtime import checkpoints, distributed
from trainers.runtime.ds_config import zero_stage_of
from trainers.runtime.engine import engine_and_loaders, loader, to_device
from trainers.runtime.metrics import MetricsLog, summary_line
from trainers.runtime.options import RunConfig, config_from_options, options_from, run_main, setting
from trainers.runtime.output import trainer_output


@dataclass
class KTOConfig(RunConfig):
    """`train kto`: the run options plus KTO's beta, the two weights and the reference model."""

    beta: float = setting(preference.DEFAULT_BETA["kto"], "Inverse temperature of the log-ratio.")
    desirable_weight: float = setting(1.0, "Weight of desirable replies' losses.")
    undesirable_weight: float = setting(1.0, "Weight of undesirable replies' losses (raise it when they are rarer).")
    ref_model: str | None = setting(None, "Frozen reference model dir; default: --model as it is before training.")
    eval_batch_size: int = setting(8, "Per-rank batch size of the evaluation passes.")


def reply_losses(cfg: KTOConfig, engine: Any, batch: dict[str, Any], reference: Any) -> tuple[Any, Any]:
    """Per-reply KTO losses and rewards of a `collate_labelled` batch: replies and mismatched pairs in one pass."""
    logps, _ = preference.batch_logprobs(engine, batch)
    policy, policy_mismatched = logps.chunk(2)
    ref, ref_mismatched = reference[batch["index"]].to(logps.device).T.unbind(0)
    kl = preference.kto_kl_estimate(policy_mismatched, ref_mismatched, distributed.all_reduce_sum)
    return preference.kto_loss(policy, ref, batch["desirable"], kl, beta=cfg.beta,
                               desirable_weight=cfg.desirable_weight, undesirable_weight=cfg.undesirable_weight)


def evaluate(cfg: KTOConfig, engine: Any, eval_loader: Any, reference: Any) -> dict[str, float]:
    """Mean reward of desirable and of undesirable replies over ``rm_eval``, their gap and the mean loss."""
    import torch

    engine.eval()
    good = bad = n_good = n_bad = loss = 0.0
    with torch.no_grad():
        for batch in eval_loader:
            batch = to_device(batch, engine.device)
            losses, rewards = reply_losses(cfg, engine, batch, reference)
            desirable = batch["desirable"]
            good += float(rewards[desirable].sum())
            bad += float(rewards[~desirable].sum())
            n_good += float(desirable.sum())
            n_bad += float((~desirable).sum())
            loss += float(losses.sum())
    engine.train()
    good, bad, n_good, n_bad, loss = distributed.all_reduce_sum([good, bad, n_good, n_bad, loss])
    good, bad = good / max(n_good, 1.0), bad / max(n_bad, 1.0)
    return {"eval_desirable_reward": good, "eval_undesirable_reward": bad, "eval_mean_margin": good - bad,
            "eval_loss": loss / max(n_good + n_bad, 1.0)}


def train_kto(cfg: KTOConfig) -> dict[str, Any]:
    """Run KTO and return a summary (eval before/after, first/last loss, cache counts, output dir)."""
    if cfg.beta <= 0 or cfg.desirable_weight <= 0 or cfg.undesirable_weight <= 0:
        raise PrefdataError("--beta and the two weights must be positive", field="beta")
    if cfg.ref_model:
        models.check_model_spec(cfg.ref_model, "ref_model")
    rank, world = distributed.init_distributed(cfg.quiet)
    with trainer_output(cfg, rank, world) as work:
        return _train_kto(cfg, rank, world, work)


def _train_kto(cfg: KTOConfig, rank: int, world: int, work: Path) -> dict[str, Any]:
    """The run, writing into ``work`` (`trainer_output` publishes it as ``cfg.out``)."""
    # 1. Processes, tokenizer, the labelled replies of the rm splits, each with its mismatched pair.
    distributed.set_seed(cfg.seed)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("kto", cfg.template, cfg.max_seq_len, truncation=cfg.truncate)
    train_set, eval_set = tokenized_phase(cfg, "rm", tokenizer, spec)
    if len(train_set) < 2:
        raise PrefdataError("rm_train has fewer than 2 usable labelled replies (unpaired rows or pairs)", file=cfg.data)

    # 2. Policy (dropout off) and its engine; reference log-probs once per reply and mismatched pair.
    model = models.load_causal_lm(cfg.model, tokenizer)
    models.disable_dropout(model)
    model = lora.with_lora(model, lora.LoraSettings.of(cfg))
    collate = functools.partial(preference.collate_labelled, pad_id=tokenizer.pad_token_id)
    train_data, eval_data = preference.Mismatched(train_set), preference.Mismatched(eval_set)
    engine, train_loader, eval_loader, total_steps = engine_and_loaders(
        cfg, "kto", model, train_data, eval_data, collate, rank=rank, world=world)
    fixed = loader(train_data, cfg.eval_batch_size, collate, shuffle=False, seed=cfg.seed, rank=rank, world=world)
    ref_train, ref_eval = cached_reference(cfg, engine, tokenizer, [fixed, eval_loader])
    resume_dir = work / "checkpoints"
    step, done_micro = checkpoints.load_resume_point(engine, resume_dir) if cfg.resume else (0, 0)
    labels = train_set.table["label"].to_pylist()
    log = MetricsLog(work, rank, cfg.quiet)
    log({"phase": "kto", "event": "start", "desirable_train": sum(labels), "undesirable_train": len(labels) - sum(labels),
         "replies_eval": len(eval_set), "world": world, "zero_stage": zero_stage_of(engine), "dtype": cfg.dtype,
         "total_steps": total_steps, "resumed_at": step, "lora_rank": cfg.lora_rank, "reference": cfg.ref_model or "model",
         "cache": {"train": train_set.info["counts"], "eval": eval_set.info["counts"]}})
    evaluable = len(eval_set) >= 2
    before = evaluate(cfg, engine, eval_loader, ref_eval) if evaluable else {}
    if before:
        log({"phase": "kto", "step": step, **before})

    # 3. Train on labelled replies.
    losses: list[float] = []
    micro_step = 0
    bar = progress(range(total_steps), desc="kto", total=total_steps, quiet=cfg.quiet or rank != 0, unit="step")
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
            reply_loss, _ = reply_losses(cfg, engine, batch, ref_train)
            loss = reply_loss.mean()
            engine.backward(loss)
            engine.step()
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            log({"phase": "kto", "step": step, "epoch": epoch, "loss": loss.item(), "lr": engine.get_lr()[0]})
            if cfg.save_steps and step % cfg.save_steps == 0:
                checkpoints.save_resume_point(engine, resume_dir, step, micro_step)
    bar.close()

    # 4. Evaluate, keep a resume point, write the checkpoint (the policy, a causal LM).
    after = evaluate(cfg, engine, eval_loader, ref_eval) if evaluable else {}
    return checkpoints.finish_run(cfg, engine, tokenizer, work, rank, phase="kto", step=step, micro_step=micro_step,
                                  losses=losses, before=before, after=after, train_set=train_set, eval_set=eval_set,
                                  log=log)


@click.command("kto")
@options_from(KTOConfig)
def kto_command(**options: Any) -> dict[str, Any]:
    """KTO on labelled replies of rm_train (unpaired rows, or both replies of each pair); eval on rm_eval."""
    result = train_kto(config_from_options(KTOConfig, options))
    if distributed.is_rank_zero():  # the summary line is the command's result: stdout, even with --quiet
        click.echo(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(kto_command)
