"""Phase 3, PPO: the SFT model (actor) learns to please the reward model while staying close to where it started.

    python -m trainers.ppo --data SPLIT_DIR --model SFT_DIR --reward-model RM_DIR --out DIR [--unsup UNSUP_DIR]
    deepspeed --num_gpus N -m trainers.ppo …        prefdata train ppo …

Four models: the actor and a frozen reference copy of it (from ``--model``), the critic (from ``--critic-model``, default
the reward model) and the frozen reward model. Each step, for a batch of ``ppo_train`` prompts:

1. the actor samples replies (under ZeRO-3 with several ranks, ``synced_gpus`` keeps the ranks' forward passes in step);
2. reward = reward-model score at the last real token, clipped to ±``clip_reward``, minus ``kl_coef`` x the per-token
   log-ratio actor/reference; the critic's values and GAE (``gamma``, ``lam``) give advantages and returns;
3. ``ppo_epochs`` passes of the PPO-clip policy loss (plus ``ptx_coef`` x LM loss on unsupervised text with ``--unsup``)
   and the clipped value loss.

``--out`` gets the actor as a Hugging Face checkpoint, the critic in ``--out/critic``; JSON lines log reward, KL, losses
and the clip fraction.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline.progress import progress
from trainers import common, models
from trainers.data import TokenizeSpec, collate_prompts, collate_sft, tokenized


@dataclass
class PPOConfig(common.RunConfig):
    reward_model: str | None = None
    critic_model: str | None = None
    unsup: str | None = None
    unsup_split: str = "train"
    ptx_coef: float = 0.0
    max_prompt_len: int = 256
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0
    critic_lr: float | None = None
    kl_coef: float = 0.1
    clip_reward: float = 5.0
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    ppo_epochs: int = 1


def masked_mean(values: Any, mask: Any) -> Any:
    return (values * mask).sum() / mask.sum().clamp(min=1)


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


def make_experience(engines: dict[str, Any], batch: dict[str, Any], cfg: PPOConfig, tokenizer: Any, synced: bool) -> dict:
    """Generate, then score with all four models: old log-probs, reference log-probs, values, rewards, advantages."""
    import torch

    sequences, attention_mask = generate(engines["actor"], batch, cfg, tokenizer, synced)
    start = batch["input_ids"].shape[1] - 1  # logits index that predicts the first reply token
    pos = position_ids(attention_mask)
    with torch.no_grad():
        kwargs = {"input_ids": sequences, "attention_mask": attention_mask, "position_ids": pos}
        logprobs = token_logprobs(engines["actor"](**kwargs).logits[:, :-1], sequences[:, 1:])[:, start:]
        ref_logprobs = token_logprobs(engines["ref"](**kwargs).logits[:, :-1], sequences[:, 1:])[:, start:]
        values = engines["critic"](**kwargs)[:, :-1][:, start:]
        score = models.last_token_scores(engines["reward"](**kwargs), attention_mask)
    mask = attention_mask[:, start + 1 :].float()
    kl = (logprobs - ref_logprobs) * mask
    rewards = -cfg.kl_coef * kl
    last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
    rewards[torch.arange(len(last)), last] += score.clamp(-cfg.clip_reward, cfg.clip_reward)
    advantages, returns = gae(rewards * mask, values * mask, mask, cfg.gamma, cfg.lam)
    return {"sequences": sequences, "attention_mask": attention_mask, "position_ids": pos, "start": start, "mask": mask,
            "logprobs": logprobs, "values": values * mask, "advantages": advantages, "returns": returns,
            "score": score, "kl": kl.sum(-1)}


def gae(rewards: Any, values: Any, mask: Any, gamma: float, lam: float) -> tuple[Any, Any]:
    """Generalised advantage estimation over reply tokens; advantages whitened over the real tokens."""
    import torch

    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    returns = advantages + values
    mean = masked_mean(advantages, mask)
    std = (masked_mean((advantages - mean) ** 2, mask) + 1e-8).sqrt()
    return ((advantages - mean) / std) * mask, returns


def policy_loss(actor: Any, exp: dict, cfg: PPOConfig) -> tuple[Any, float, float]:
    """PPO-clip objective; also the clip fraction and the approximate KL to the policy that generated the batch."""
    import torch

    logits = actor(input_ids=exp["sequences"], attention_mask=exp["attention_mask"], position_ids=exp["position_ids"]).logits
    logprobs = token_logprobs(logits[:, :-1], exp["sequences"][:, 1:])[:, exp["start"] :]
    log_ratio = (logprobs - exp["logprobs"]) * exp["mask"]
    ratio = torch.exp(log_ratio)
    unclipped = -exp["advantages"] * ratio
    clipped = -exp["advantages"] * torch.clamp(ratio, 1.0 - cfg.cliprange, 1.0 + cfg.cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), exp["mask"])
    clip_fraction = masked_mean(((ratio - 1.0).abs() > cfg.cliprange).float(), exp["mask"])
    approx_kl = masked_mean(ratio - 1.0 - log_ratio, exp["mask"])
    return loss, clip_fraction.item(), approx_kl.item()


def value_loss(critic: Any, exp: dict, cfg: PPOConfig) -> Any:
    """Clipped value loss: the new value may not profit from moving more than ``cliprange_value`` from the old one."""
    import torch

    values = critic(input_ids=exp["sequences"], attention_mask=exp["attention_mask"], position_ids=exp["position_ids"])
    values = values[:, :-1][:, exp["start"] :]
    clipped = exp["values"] + torch.clamp(values - exp["values"], -cfg.cliprange_value, cfg.cliprange_value)
    losses = torch.max((values - exp["returns"]) ** 2, (clipped - exp["returns"]) ** 2)
    return 0.5 * masked_mean(losses, exp["mask"])


def train_ppo(cfg: PPOConfig, reward_model: Any = None) -> dict[str, Any]:
    """Run phase 3 and return a summary. ``reward_model`` may be any module mapping (input_ids, attention_mask,
    position_ids) to per-token values (a rule-based scorer, say); by default it is loaded from ``cfg.reward_model``."""
    import deepspeed
    import torch

    if reward_model is None and not cfg.reward_model:
        raise PrefdataError("PPO needs --reward-model", field="reward_model")
    for option in ("reward_model", "critic_model"):
        if getattr(cfg, option):
            models.check_model_spec(getattr(cfg, option), option)
    # 1. Processes, tokenizer (the SFT model's), cached prompts and, for ptx, cached unsupervised text.
    rank, world = common.init_distributed()
    common.set_seed(cfg.seed)
    out = Path(cfg.out)
    tokenizer = models.load_tokenizer(cfg.tokenizer, cfg.model)
    spec = TokenizeSpec("ppo", cfg.template, max_prompt_len=cfg.max_prompt_len, truncation=cfg.truncate)
    prompts = tokenized(cfg.data, "ppo_train", tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
    if len(prompts) == 0:
        raise PrefdataError("ppo_train has no usable prompts", file=cfg.data)
    unsup = None
    if cfg.unsup:
        unsup = tokenized(cfg.unsup, cfg.unsup_split, tokenizer, TokenizeSpec("ptx", max_seq_len=cfg.max_seq_len),
                          cfg.cache_dir, quiet=cfg.quiet)

    # 2. Four models: trained actor and critic engines; frozen reference and reward model (sharded under ZeRO-3).
    actor = models.load_causal_lm(cfg.model, tokenizer)
    models.disable_dropout(actor)
    reference = copy.deepcopy(actor).eval().requires_grad_(False)
    critic = models.load_value_model(cfg.critic_model or cfg.reward_model, tokenizer)
    models.disable_dropout(critic)
    if reward_model is None:
        reward_model = models.load_value_model(cfg.reward_model, tokenizer)
    reward_model = reward_model.eval().requires_grad_(False)
    probe = common.deepspeed_config(cfg, "ppo", world_size=world, total_steps=1)
    micro, accum = probe["train_micro_batch_size_per_gpu"], probe["gradient_accumulation_steps"]
    prompt_loader = common.loader(prompts, micro, functools.partial(collate_prompts, pad_id=tokenizer.pad_token_id),
                                  shuffle=True, seed=cfg.seed, rank=rank, world=world)
    # A PPO step is one batch of prompts; it makes ppo_epochs optimizer micro-steps per model.
    total_steps = min(cfg.max_steps or 10**12, len(prompt_loader) * cfg.epochs)
    optimizer_steps = max(total_steps * cfg.ppo_epochs // accum, 1)
    actor_config = common.deepspeed_config(cfg, "ppo", world_size=world, total_steps=optimizer_steps)
    critic_config = common.deepspeed_config(cfg, "ppo", world_size=world, total_steps=optimizer_steps, lr=cfg.critic_lr)
    actor_engine, *_ = deepspeed.initialize(model=actor, model_parameters=actor.parameters(), config=actor_config)
    critic_engine, *_ = deepspeed.initialize(model=critic, model_parameters=critic.parameters(), config=critic_config)
    stage = common.zero_stage_of(actor_engine)
    frozen = common.frozen_config(cfg, stage)
    engines = {
        "actor": actor_engine,
        "critic": critic_engine,
        "ref": deepspeed.initialize(model=reference, config=frozen)[0],
        # A parameter-free (rule-based) scorer has nothing to shard: it runs as it is.
        "reward": deepspeed.initialize(model=reward_model, config=frozen)[0]
        if any(True for _ in reward_model.parameters()) else reward_model.to(actor_engine.device),
    }
    synced = stage == 3 and world > 1
    ptx_batches = None
    if unsup is not None and cfg.ptx_coef > 0:
        ptx_loader = common.loader(unsup, micro, functools.partial(collate_sft, pad_id=tokenizer.pad_token_id),
                                   shuffle=True, seed=cfg.seed, rank=rank, world=world)
        ptx_batches = itertools.cycle(ptx_loader)
    resume_dir = out / "checkpoints"
    step = done_micro = 0
    if cfg.resume:
        step, done_micro = common.load_resume_point(actor_engine, resume_dir / "actor")
        common.load_resume_point(critic_engine, resume_dir / "critic")
    log = common.MetricsLog(out, rank, cfg.quiet)
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
            exp = make_experience(engines, common.to_device(batch, actor_engine.device), cfg, tokenizer, synced)
            for _ in range(cfg.ppo_epochs):
                actor_loss, clip_fraction, approx_kl = policy_loss(actor_engine, exp, cfg)
                ptx_loss = None
                if ptx_batches is not None:
                    ptx = common.to_device(next(ptx_batches), actor_engine.device)
                    ptx_loss = actor_engine(**ptx).loss
                    actor_loss = actor_loss + cfg.ptx_coef * ptx_loss
                actor_engine.backward(actor_loss)
                actor_engine.step()
                critic_loss = value_loss(critic_engine, exp, cfg)
                critic_engine.backward(critic_loss)
                critic_engine.step()
            step += 1
            reward, kl = common.all_reduce_sum([exp["score"].mean().item() / world, exp["kl"].mean().item() / world])
            rewards.append(reward)
            kls.append(kl)
            bar.update(1)
            record = {"phase": "ppo", "step": step, "reward": reward, "kl": kl, "policy_loss": actor_loss.item(),
                      "value_loss": critic_loss.item(), "clip_fraction": clip_fraction, "approx_kl": approx_kl,
                      "reply_tokens": exp["mask"].sum(-1).mean().item()}
            if ptx_loss is not None:
                record["ptx_loss"] = ptx_loss.item()
            log(record)
            if cfg.save_steps and step % cfg.save_steps == 0:
                common.save_resume_point(actor_engine, resume_dir / "actor", step, micro_step)
                common.save_resume_point(critic_engine, resume_dir / "critic", step, micro_step)
    bar.close()
    if not all(torch.isfinite(torch.tensor(kls))):
        raise RuntimeError("PPO diverged: the KL to the reference model is not finite")

    # 4. Resume points and checkpoints: the actor in OUT, the critic in OUT/critic.
    common.save_resume_point(actor_engine, resume_dir / "actor", step, micro_step)
    common.save_resume_point(critic_engine, resume_dir / "critic", step, micro_step)
    common.save_hf(actor_engine, tokenizer, out, rank)
    common.save_hf(critic_engine, tokenizer, out / "critic", rank)
    summary = {"phase": "ppo", "event": "end", "steps": step, "rewards": rewards, "kls": kls, "out": str(out)}
    log({k: v for k, v in summary.items() if k not in ("rewards", "kls")})
    return {**summary, "cache": prompts.info, "cache_built": prompts.built, "config": asdict(cfg)}


@click.command("ppo")
@common.common_options
@click.option("--reward-model", default=None, help="Reward model dir (from `train reward`).")
@click.option("--critic-model", default=None, help="Critic initialisation; default: the reward model.")
@click.option("--unsup", default=None, type=click.Path(exists=True, file_okay=False),
              help="prefdata.unsup/1 dir for the ptx loss.")
@click.option("--unsup-split", default="train", show_default=True)
@click.option("--ptx-coef", type=float, default=0.0, show_default=True, help="Weight of the LM loss on --unsup text.")
@click.option("--max-prompt-len", type=int, default=256, show_default=True)
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--critic-lr", type=float, default=None, help="Default: the actor's learning rate.")
@click.option("--kl-coef", type=float, default=0.1, show_default=True)
@click.option("--clip-reward", type=float, default=5.0, show_default=True)
@click.option("--gamma", type=float, default=1.0, show_default=True)
@click.option("--lam", type=float, default=0.95, show_default=True)
@click.option("--cliprange", type=float, default=0.2, show_default=True)
@click.option("--cliprange-value", type=float, default=0.2, show_default=True)
@click.option("--ppo-epochs", type=int, default=1, show_default=True)
def ppo_command(**options: Any) -> None:
    """Phase 3: PPO on the prompts of ppo_train with an SFT actor and a trained reward model."""
    cfg = common.config_from_options(PPOConfig, options)
    result = train_ppo(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # the summary line is printed even with --quiet
        click.echo(common.summary_line(result), err=True)


if __name__ == "__main__":
    common.run_main(ppo_command)
