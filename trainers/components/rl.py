"""The RL math of the recipes as pure tensor functions, so each formula is unit-tested on numbers worked out by hand.

Shapes: ``B`` rows, ``T`` reply tokens. ``mask[b, t]`` is 1 on the reply's real tokens (up to and including its EOS)
and 0 on padding; every mean below is over the real tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Tensor = Any  # torch.Tensor; torch is imported only when a function runs


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (0 when there are none)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / std`` over the real tokens of the whole batch (population std), 0 on padding: advantages
    of a common scale whatever the reward's, so one ``cliprange`` and learning rate fit every reward model."""
    mean = masked_mean(values, mask)
    std = (masked_mean((values - mean) ** 2, mask) + eps).sqrt()
    return ((values - mean) / std) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float, *, whitened: bool = True
        ) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation: ``(advantages, returns)`` of ``[B, T]`` rewards and critic values.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` (``V_T = 0``), ``A_t = delta_t + gamma * lam * A_{t+1}``, and the
    critic's target ``returns = A + V`` from the raw advantages. ``rewards`` and ``values`` must be 0 on padding, so
    padding adds nothing. The advantages are whitened over the real tokens unless ``whitened`` is False.
    """
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
    return (whiten(advantages, mask) if whitened else advantages * mask), returns


def kl_penalised_rewards(logprobs: Tensor, ref_logprobs: Tensor, score: Tensor, mask: Tensor, *, kl_coef: float,
                         clip_reward: float) -> tuple[Tensor, Tensor]:
    """Per-token rewards and the per-token KL estimate: ``-kl_coef * (log p_actor - log p_ref)`` on every reply token,
    plus the reward model's ``score`` clipped to ±``clip_reward`` on each row's last real token."""
    import torch

    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
    rewards[torch.arange(len(last)), last] += score.clamp(-clip_reward, clip_reward)
    return rewards * mask, kl


def ppo_clip_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, cliprange: float
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """PPO-clip: ``mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` with ``ratio = p_new / p_old``.

    The max of the two losses is the pessimistic one: a step never gains from pushing the ratio past the clip range.
    Also returns the clip fraction and ``mean(ratio - 1 - log ratio)``, an estimate of KL(old || new) that is >= 0.
    """
    import torch

    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = masked_mean(((ratio - 1.0).abs() > cliprange).float(), mask)
    approx_kl = masked_mean(ratio - 1.0 - log_ratio, mask)
    return loss, clip_fraction, approx_kl


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange_value: float
                       ) -> Tensor:
    """``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, ±eps) - R)^2))``: the critic may not profit from moving
    more than ``cliprange_value`` away from the values the experience was collected with."""
    import torch

    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    losses = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(losses, mask)


def pairwise_loss(chosen: Tensor, rejected: Tensor, margin: Tensor | float = 0.0) -> Tensor:
    """Reward-model loss ``mean(-log sigmoid(r_chosen - r_rejected - margin))``: with a margin, the chosen reply must
    outscore the rejected one by at least that much before the loss flattens (Llama 2's margin loss)."""
    import torch.nn.functional as F

    return -F.logsigmoid(chosen - rejected - margin).mean()


@dataclass
class Trajectory:
    """One PPO batch of experience, collected once and trained on ``ppo_epochs`` times.

    ``sequences``/``attention_mask``/``position_ids`` are ``[B, P + T]`` (left-padded prompt, reply, right padding);
    every other tensor is ``[B, T]`` over the reply, where ``start`` is the logits index predicting the first reply
    token. ``score`` is the reward model's per row, ``kl`` the summed per-token KL to the reference per row.
    """

    sequences: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    start: int
    mask: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    score: Tensor
    kl: Tensor

    def model_inputs(self) -> dict[str, Tensor]:
        """The keyword arguments of a forward pass of the actor or the critic over the whole sequences."""
        return {"input_ids": self.sequences, "attention_mask": self.attention_mask, "position_ids": self.position_ids}
