"""Phase 3, PPO: the SFT model (actor) learns to please the reward model while staying close to where it started.

    python -m trainers.recipes.ppo --data SPLIT_DIR --model SFT_DIR --reward-model RM_DIR --out DIR [--unsup DIR]
    deepspeed --num_gpus N -m trainers.recipes.ppo …        prefdata train ppo …

Four models: the actor and a frozen reference copy of it (from ``--model``), the critic (from ``--critic-model``, default
the reward model) and the frozen reward model. Each step, for a batch of ``ppo_train`` prompts:

1. the actor samples replies (under ZeRO-3 with several ranks, ``synced_gpus`` keeps the ranks' forward passes in step);
2. reward = reward-model score at the last real token, clipped to ±``clip_reward``, minus ``kl_coef`` x the per-token
   log-ratio actor/reference; the critic's values and GAE (``gamma``, ``lam``) give whitened advantages and returns;
3. ``ppo_epochs`` passes of the PPO-clip policy loss (plus ``ptx_coef`` x LM loss on unsupervised text with ``--unsup``)
   and the clipped value loss.

``--out`` gets the actor as a Hugging Face checkpoint, the critic in ``--out/critic``; JSON lines log reward, KL, losses
and the clip fraction.
"""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import phase_splits
from prefdata.pipeline.progress import progress
from trainers.components import lora, models, rl
from trainers.components.collate import collate_prompts, collate_sft
from trainers.components.tokens import TokenizeSpec, tokenized
from trainers.runtime import checkpoints, distributed
from trainers.runtime.ds_config import deepspeed_config, frozen_config, zero_stage_of
from trainers.runtime.engine import batch_shape, loader, to_device
from trainers.runtime.metrics import MetricsLog, summary_line
from trainers.runtime.options import (
    TOKENIZE_DEFAULTS,
    RunConfig,
    config_from_options,
    options_from,
    run_main,
    setting,
)
from trainers.runtime.output import trainer_output


@dataclass
class PPOConfig(RunConfig):
    """`train ppo`: the run options plus the models, sampling, reward shaping and PPO hyper-parameters."""

    reward_model: str | None = setting(None, "Reward model dir (from `train reward`).")
    critic_model: str | None = setting(None, "Critic initialisation; default: the reward model.")
    unsup: str | None = setting(None, "prefdata.unsup/1 dir for the ptx loss.",
                                click_type=click.Path(exists=True, file_okay=False))
    unsup_split: str = setting("train", "Split of --unsup to read.")
    ptx_coef: float = setting(0.0, "Weight of the LM loss on --unsup text.")
    max_prompt_len: int = setting(TOKENIZE_DEFAULTS["max_prompt_len"], "Prompt tokens kept for generation.")
    max_new_tokens: int = setting(256, "Reply tokens sampled per prompt.")
    temperature: float = setting(1.0, "Sampling temperature.")
    top_k: int = setting(0, "Sample from the k likeliest tokens (0: all).")
    critic_lr: float | None = setting(None, "Default: the actor's learning rate.")
    kl_coef: float = setting(0.1, "Per-token penalty on log p_actor - log p_reference.")
    clip_reward: float = setting(5.0, "Reward-model scores are clipped to +-this.")
    gamma: float = setting(1.0, "GAE discount.")
    lam: float = setting(0.95, "GAE lambda.")
    cliprange: float = setting(0.2, "PPO ratio clip range.")
    cliprange_value: float = setting(0.2, "Value clip range around the collected values.")
    ppo_epochs: int = setting(1, "Passes over each batch of experience.")


def position_ids(attention_mask: Any) -> Any:
    """Positions that skip left padding, the same at generation and at training time."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def token_logprobs(logits: Any, tokens: Any) -> Any:
    """log p(tokens[t] | ..t-1) from logits of positions 0..T-2."""
    import torch

    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def generate(actor: Any, batch: dict[str, Any], cfg: PPOConfig, tokenizer: Any, synced: bool) -> tuple[Any, Any]:
    """Sample replies; return the full sequences and their attention mask (a reply ends at its first EOS)."""
    import torch

    actor.eval()
    with torch.no_grad():
        sequences = actor.module.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=cfg.max_new_tokens,
            do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k, top_p=1.0,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, synced_gpus=synced,
        )
    actor.train()
    prompt_len = batch["input_ids"].shape[1]
    reply = sequences[:, prompt_len:]
    is_eos = (reply == tokenizer.eos_token_id).long()
    reply_mask = ((is_eos.cumsum(-1) - is_eos) == 0).long()  # up to and including the first EOS
    return sequences, torch.cat([batch["attention_mask"], reply_mask], dim=1)


def reply_logprobs(actor: Any, inputs: dict[str, Any], start: int) -> Any:
    """log p of each reply token under ``actor`` (an engine or a module), ``[B, T]``."""
    sequences = inputs["input_ids"]
    return token_logprobs(actor(**inputs).logits[:, :-1], sequences[:, 1:])[:, start:]


def reply_values(critic: Any, inputs: dict[str, Any], start: int) -> Any:
    """The critic's value of each reply token's prefix, ``[B, T]``."""
    return critic(**inputs)[:, :-1][:, start:]


def make_experience(engines: dict[str, Any], batch: dict[str, Any], cfg: PPOConfig, tokenizer: Any,
                    synced: bool) -> rl.Trajectory:
    """Generate, then score with all four models: old log-probs, reference log-probs, values, rewards, advantages."""
    import torch

    sequences, attention_mask = generate(engines["actor"], batch, cfg, tokenizer, synced)
    start = batch["input_ids"].shape[1] - 1  # logits index that predicts the first reply token
    inputs = {"input_ids": sequences, "attention_mask": attention_mask, "position_ids": position_ids(attention_mask)}
    with torch.no_grad():
        logprobs = reply_logprobs(engines["actor"], inputs, start)
        ref_logprobs = reply_logprobs(engines["ref"], inputs, start)
        values = reply_values(engines["critic"], inputs, start)
        score = models.last_token_scores(engines["reward"](**inputs), attention_mask)
    mask = attention_mask[:, start + 1 :].float()
    rewards, kl = rl.kl_penalised_rewards(logprobs, ref_logprobs, score, mask, kl_coef=cfg.kl_coef,
                                          clip_reward=cfg.clip_reward)
    advantages, returns = rl.gae(rewards, values * mask, mask, cfg.gamma, cfg.lam)
    return rl.Trajectory(sequences=sequences, attention_mask=attention_mask, position_ids=inputs["position_ids"],
                         start=start, mask=mask, logprobs=logprobs, values=values * mask, advantages=advantages,
                         returns=returns, score=score, kl=kl.sum(-1))


def policy_loss(actor: Any, traj: rl.Trajectory, cfg: PPOConfig) -> tuple[Any, float, float]:
    """PPO-clip loss of the actor's current log-probs on ``traj``; also the clip fraction and the approximate KL."""
    logprobs = reply_logprobs(actor, traj.model_inputs(), traj.start)
    loss, clip_fraction, approx_kl = rl.ppo_clip_loss(logprobs, traj.logprobs, traj.advantages, traj.mask,
                                                      cfg.cliprange)
    return loss, clip_fraction.item(), approx_kl.item()


def value_loss(critic: Any, traj: rl.Trajectory, cfg: PPOConfig) -> Any:
    """Clipped value loss of the critic's current values on ``traj``."""
    values = reply_values(critic, traj.model_inputs(), traj.start)
    return rl.clipped_value_loss(values, traj.values, traj.returns, traj.mask, cfg.cliprange_value)


def trainable(model: Any) -> list[Any]:
    """The parameters the optimizer updates (all of them, or under LoRA the adapters and the critic's head)."""
    return [p for p in model.parameters() if p.requires_grad]


def train_ppo(cfg: PPOConfig, reward_model: Any = None) -> dict[str, Any]:
    """Run phase 3 and return a summary. ``reward_model`` may be any module mapping (input_ids, attention_mask,
    position_ids) to per-token values (a rule-based scorer, say); by default it is loaded from ``cfg.reward_model``."""

    if reward_model is None and not cfg.reward_model:
        raise PrefdataError("PPO needs --reward-model", field="reward_model")
    for option in ("reward_model", "critic_model"):
        if getattr(cfg, option):
            models.check_model_spec(getattr(cfg, option), option)
    rank, world = distributed.init_distributed(cfg.quiet)
    with trainer_output(cfg, rank, world) as work:
        return _train_ppo(cfg, reward_model, rank, world, work)


def _train_ppo(cfg: PPOConfig, reward_model: Any, rank: int, world: int, work: Path) -> dict[str, Any]:
    """The run, writing into ``work`` (`trainer_output` publishes it as ``cfg.out``)."""
    import torch

    # 1. Seed, tokenizer (the SFT model's), cached prompts and, for ptx, cached unsupervised text.
    distributed.set_seed(cfg.seed)
    import deepspeed  # after init_distributed, which imports it with its log routed
    out = Path(cfg.out)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("ppo", cfg.template, max_prompt_len=cfg.max_prompt_len, truncation=cfg.truncate)
    prompts = tokenized(cfg.data, phase_splits("ppo")[0], tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    if len(prompts) == 0:
        raise PrefdataError("ppo_train has no usable prompts", file=cfg.data)
    unsup = None
    if cfg.unsup:
        unsup = tokenized(cfg.unsup, cfg.unsup_split, tokenizer, TokenizeSpec("ptx", max_seq_len=cfg.max_seq_len),
                          cfg.cache_dir, quiet=cfg.quiet)

    # 2. Four models: trained actor and critic engines; frozen reference and reward model (sharded under ZeRO-3).
    # Under LoRA the reference is the actor with its adapter off: no copy.
    adapters = lora.LoraSettings.of(cfg)
    actor = models.load_causal_lm(cfg.model, tokenizer)
    models.disable_dropout(actor)
    reference = None if adapters else copy.deepcopy(actor).eval().requires_grad_(False)
    actor = lora.with_lora(actor, adapters)
    critic = models.load_value_model(cfg.critic_model or cfg.reward_model, tokenizer)
    models.disable_dropout(critic)
    critic = lora.with_lora(critic, adapters)
    if reward_model is None:
        reward_model = models.load_reward_model(cfg.reward_model, tokenizer)
    reward_model = reward_model.eval().requires_grad_(False)
    micro, accum = batch_shape(cfg, "ppo")
    prompt_loader = loader(prompts, micro, functools.partial(collate_prompts, pad_id=tokenizer.pad_token_id),
                           shuffle=True, seed=cfg.seed, rank=rank, world=world)
    # A PPO step is one batch of prompts; it makes ppo_epochs optimizer micro-steps per model.
    total_steps = min(cfg.max_steps or 10**12, len(prompt_loader) * cfg.epochs)
    optimizer_steps = max(total_steps * cfg.ppo_epochs // accum, 1)
    actor_config = deepspeed_config(cfg, "ppo", total_steps=optimizer_steps)
    critic_config = deepspeed_config(cfg, "ppo", total_steps=optimizer_steps, lr=cfg.critic_lr)
    actor_engine, *_ = deepspeed.initialize(model=actor, model_parameters=trainable(actor), config=actor_config)
    critic_engine, *_ = deepspeed.initialize(model=critic, model_parameters=trainable(critic), config=critic_config)
    stage = zero_stage_of(actor_engine)
    frozen = frozen_config(cfg, stage)
    engines = {
        "actor": actor_engine,
        "critic": critic_engine,
        "ref": lora.AdapterDisabled(actor_engine) if reference is None
        else deepspeed.initialize(model=reference, config=frozen)[0],
        # A parameter-free (rule-based) scorer has nothing to shard: it runs as it is.
        "reward": deepspeed.initialize(model=reward_model, config=frozen)[0]
        if any(True for _ in reward_model.parameters()) else reward_model.to(actor_engine.device),
    }
    synced = stage == 3 and world > 1
    ptx_batches = None
    if unsup is not None and cfg.ptx_coef > 0:
        ptx_loader = loader(unsup, micro, functools.partial(collate_sft, pad_id=tokenizer.pad_token_id),
                            shuffle=True, seed=cfg.seed, rank=rank, world=world)
        ptx_batches = itertools.cycle(ptx_loader)
    resume_dir = work / "checkpoints"
    step = done_micro = 0
    if cfg.resume:
        step, done_micro = checkpoints.load_resume_point(actor_engine, resume_dir / "actor")
        checkpoints.load_resume_point(critic_engine, resume_dir / "critic")
    log = MetricsLog(work, rank, cfg.quiet)
    log({"phase": "ppo", "event": "start", "prompts": len(prompts), "world": world, "zero_stage": stage,
         "dtype": cfg.dtype, "total_steps": total_steps, "resumed_at": step, "cache": prompts.info["counts"]})

    # 3. The loop: experience from the current actor, then PPO updates of actor and critic on it.
    rewards: list[float] = []
    kls: list[float] = []
    micro_step = 0
    bar = progress(range(total_steps), desc="ppo", total=total_steps, quiet=cfg.quiet or rank != 0, unit="step")
    bar.update(step)
    for epoch in range(cfg.epochs):
        prompt_loader.sampler.set_epoch(epoch)
        for batch in prompt_loader:
            if step >= total_steps:
                break
            micro_step += 1
            if micro_step <= done_micro:
                continue
            traj = make_experience(engines, to_device(batch, actor_engine.device), cfg, tokenizer, synced)
            for _ in range(cfg.ppo_epochs):
                actor_loss, clip_fraction, approx_kl = policy_loss(actor_engine, traj, cfg)
                ptx_loss = None
                if ptx_batches is not None:
                    ptx = to_device(next(ptx_batches), actor_engine.device)
                    ptx_loss = actor_engine(**ptx).loss
                    actor_loss = actor_loss + cfg.ptx_coef * ptx_loss
                actor_engine.backward(actor_loss)
                actor_engine.step()
                critic_loss = value_loss(critic_engine, traj, cfg)
                critic_engine.backward(critic_loss)
                critic_engine.step()
            step += 1
            reward, kl = distributed.all_reduce_sum([traj.score.mean().item() / world, traj.kl.mean().item() / world])
            rewards.append(reward)
            kls.append(kl)
            bar.update(1)
            record = {"phase": "ppo", "step": step, "reward": reward, "kl": kl, "policy_loss": actor_loss.item(),
                      "value_loss": critic_loss.item(), "clip_fraction": clip_fraction, "approx_kl": approx_kl,
                      "reply_tokens": traj.mask.sum(-1).mean().item()}
            if ptx_loss is not None:
                record["ptx_loss"] = ptx_loss.item()
            log(record)
            if cfg.save_steps and step % cfg.save_steps == 0:
                checkpoints.save_resume_point(actor_engine, resume_dir / "actor", step, micro_step)
                checkpoints.save_resume_point(critic_engine, resume_dir / "critic", step, micro_step)
    bar.close()
    if not all(torch.isfinite(torch.tensor(kls))):
        raise RuntimeError("PPO diverged: the KL to the reference model is not finite")

    # 4. Resume points and checkpoints: the actor in OUT, the critic in OUT/critic.
    checkpoints.save_resume_point(actor_engine, resume_dir / "actor", step, micro_step)
    checkpoints.save_resume_point(critic_engine, resume_dir / "critic", step, micro_step)
    checkpoints.save_hf(actor_engine, tokenizer, work, rank, merge_lora=cfg.lora_merge)
    checkpoints.save_hf(critic_engine, tokenizer, work / "critic", rank, merge_lora=cfg.lora_merge)
    summary = {"phase": "ppo", "event": "end", "steps": step, "rewards": rewards, "kls": kls, "out": str(out)}
    log({k: v for k, v in summary.items() if k not in ("rewards", "kls")})
    return {**summary, "cache": prompts.info, "cache_built": prompts.built, "config": asdict(cfg)}


@click.command("ppo")
@options_from(PPOConfig)
def ppo_command(**options: Any) -> dict[str, Any]:
    """Phase 3: PPO on the prompts of ppo_train with an SFT actor and a trained reward model."""
    result = train_ppo(config_from_options(PPOConfig, options))
    if distributed.is_rank_zero():  # the summary line is the command's result: stdout, even with --quiet
        click.echo(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(ppo_command)
