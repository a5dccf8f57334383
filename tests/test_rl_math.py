"""The RL math of `trainers.components.rl` on cases small enough to work out by hand; the arithmetic is in the tests.

And one check that the PPO recipe's experience really uses the whitened advantages (`make_experience` with stub
models): a recipe that called GAE without whitening would train on advantages of the reward's own scale.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch", reason="the trainers need the train extra")

from trainers.components import rl  # noqa: E402


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------------------ GAE

GAMMA, LAM = 0.9, 0.5
REWARDS, VALUES = t([0.0, 0.0, 1.0]), t([0.5, 0.4, 0.6])
# delta_t = r_t + gamma * V_{t+1} - V_t (V_3 = 0); A_t = delta_t + gamma * lam * A_{t+1}; gamma * lam = 0.45
A2 = 1.0 + 0.9 * 0.0 - 0.6  # = 0.4
A1 = (0.0 + 0.9 * 0.6 - 0.4) + 0.45 * A2  # = 0.14 + 0.18 = 0.32
A0 = (0.0 + 0.9 * 0.4 - 0.5) + 0.45 * A1  # = -0.14 + 0.144 = 0.004
RAW = [A0, A1, A2]


def test_gae_without_whitening_is_the_recursion_worked_by_hand():
    advantages, returns = rl.gae(REWARDS, VALUES, torch.ones(1, 3), GAMMA, LAM, whitened=False)
    assert advantages[0].tolist() == pytest.approx([0.004, 0.32, 0.4])
    assert advantages[0].tolist() == pytest.approx(RAW)
    assert returns[0].tolist() == pytest.approx([0.004 + 0.5, 0.32 + 0.4, 0.4 + 0.6])  # returns = A + V, unwhitened


def test_gae_whitens_by_default_over_the_real_tokens():
    advantages, returns = rl.gae(REWARDS, VALUES, torch.ones(1, 3), GAMMA, LAM)
    mean = (0.004 + 0.32 + 0.4) / 3  # 0.241333…
    std = math.sqrt(((0.004 - mean) ** 2 + (0.32 - mean) ** 2 + (0.4 - mean) ** 2) / 3)  # population std, 0.170968…
    assert advantages[0].tolist() == pytest.approx([(a - mean) / std for a in RAW], rel=1e-6)
    assert advantages[0].tolist() == pytest.approx([-1.38823, 0.46012, 0.92811], abs=1e-4)
    assert returns[0].tolist() == pytest.approx([0.504, 0.72, 1.0])  # the critic's targets are never whitened


def test_gae_padding_adds_nothing_and_stays_zero():
    # Row with two real tokens and one pad (rewards and values are 0 there, as the recipe passes them).
    rewards, values, mask = t([0.0, 1.0, 0.0]), t([0.2, 0.3, 0.0]), t([1.0, 1.0, 0.0])
    advantages, _ = rl.gae(rewards, values, mask, GAMMA, LAM, whitened=False)
    last = 1.0 + 0.9 * 0.0 - 0.3  # = 0.7: the pad's value is 0, so the reply's last token bootstraps from nothing
    first = (0.0 + 0.9 * 0.3 - 0.2) + 0.45 * last  # = 0.07 + 0.315 = 0.385
    assert advantages[0].tolist() == pytest.approx([first, last, 0.0])
    whitened, _ = rl.gae(rewards, values, mask, GAMMA, LAM)
    assert whitened[0, 2].item() == 0.0
    assert whitened[0, :2].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)  # two values: mean 0, std 1 -> -1, +1


def test_whiten_uses_population_std_over_the_mask():
    values, mask = t([1.0, 3.0, 100.0]), t([1.0, 1.0, 0.0])
    # real tokens 1 and 3: mean 2, population std 1
    assert rl.whiten(values, mask)[0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-6)
    assert rl.masked_mean(values, mask).item() == pytest.approx(2.0)
    assert rl.masked_mean(values, torch.zeros_like(mask)).item() == 0.0  # no real token: 0, not a division by 0


# ------------------------------------------------------------------------------------------------------- PPO-clip


def _clip_loss(ratio: float, advantage: float, cliprange: float = 0.2):
    old = t([-1.0])
    return rl.ppo_clip_loss(old + math.log(ratio), old, t([advantage]), torch.ones(1, 1), cliprange)


def test_ppo_clip_loss_inside_the_clip_range_is_the_plain_ratio_objective():
    loss, clip_fraction, approx_kl = _clip_loss(1.1, 2.0)
    assert loss.item() == pytest.approx(-2.0 * 1.1)  # -A * ratio; clipping changes nothing inside 1 ± 0.2
    assert clip_fraction.item() == 0.0
    assert approx_kl.item() == pytest.approx(1.1 - 1.0 - math.log(1.1))  # ratio - 1 - log ratio = 0.0046898…


def test_ppo_clip_loss_outside_the_range_takes_the_pessimistic_side():
    # A > 0, ratio 1.5: unclipped -2 * 1.5 = -3.0, clipped -2 * 1.2 = -2.4; max = -2.4 (no gain past 1 + eps)
    loss, clip_fraction, _ = _clip_loss(1.5, 2.0)
    assert loss.item() == pytest.approx(-2.4) and clip_fraction.item() == 1.0
    # A < 0, ratio 1.5: unclipped 2 * 1.5 = 3.0, clipped 2 * 1.2 = 2.4; max = 3.0 (a bad step is not forgiven)
    assert _clip_loss(1.5, -2.0)[0].item() == pytest.approx(3.0)
    # A > 0, ratio 0.5: unclipped -1.0, clipped -2 * 0.8 = -1.6; max = -1.0
    assert _clip_loss(0.5, 2.0)[0].item() == pytest.approx(-1.0)
    # A < 0, ratio 0.5: unclipped 1.0, clipped 2 * 0.8 = 1.6; max = 1.6
    assert _clip_loss(0.5, -2.0)[0].item() == pytest.approx(1.6)


def test_ppo_clip_loss_averages_over_real_tokens_only():
    old = t([-1.0, -1.0])
    loss, _, _ = rl.ppo_clip_loss(old + math.log(1.1), old, t([2.0, 50.0]), t([1.0, 0.0]), 0.2)
    assert loss.item() == pytest.approx(-2.2)  # the padded token's advantage of 50 is ignored


def test_ppo_clip_loss_is_finite_where_padding_has_equal_logprobs():
    # Padding as the collators leave it: new and old log-probs both 0 there. The real token: ratio 1.1, A = 2.
    logprobs, old = t([-1.0 + math.log(1.1), 0.0]), t([-1.0, 0.0])
    loss, clip_fraction, approx_kl = rl.ppo_clip_loss(logprobs, old, t([2.0, 0.0]), t([1.0, 0.0]), 0.2)
    assert loss.item() == pytest.approx(-2.2)
    assert clip_fraction.item() == 0.0
    assert approx_kl.item() == pytest.approx(1.1 - 1 - math.log(1.1))  # ratio - 1 - log ratio, real token only


# ----------------------------------------------------------------------------------------------------- value loss


def test_clipped_value_loss_inside_and_outside_the_clip_range():
    old, returns, mask = t([1.0]), t([2.0]), torch.ones(1, 1)
    # inside: V = 1.1, |V - V_old| = 0.1 <= 0.2: both terms (1.1 - 2)^2 = 0.81; loss 0.5 * 0.81
    assert rl.clipped_value_loss(t([1.1]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.81)
    # outside: V = 2.0 hits the return exactly (0), but clipped V = 1.2 gives (1.2 - 2)^2 = 0.64; max -> 0.5 * 0.64
    assert rl.clipped_value_loss(t([2.0]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.64)
    # outside, moving away: V = 0.0: unclipped (0 - 2)^2 = 4, clipped V = 0.8: 1.44; max -> 0.5 * 4
    assert rl.clipped_value_loss(t([0.0]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 4.0)


def test_clipped_value_loss_clips_from_below_too():
    # returns 0 below V_old = 1; V = 0.0 hits it (0), but clipped V = 1 - 0.2 = 0.8 gives 0.64; max -> 0.5 * 0.64
    old, returns, mask = t([1.0]), t([0.0]), torch.ones(1, 1)
    assert rl.clipped_value_loss(t([0.0]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.64)


# ------------------------------------------------------------------------------------------------ KL and rewards


def test_kl_penalised_rewards_put_the_clipped_score_on_the_last_real_token():
    logprobs, ref, mask = t([-1.0, -2.0, -0.5]), t([-1.5, -1.0, -0.9]), t([1.0, 1.0, 0.0])
    rewards, kl = rl.kl_penalised_rewards(logprobs, ref, torch.tensor([7.0], dtype=torch.float64), mask, kl_coef=0.1,
                                          clip_reward=5.0)
    assert kl[0].tolist() == pytest.approx([0.5, -1.0, 0.0])  # log p - log p_ref, 0 on the pad
    # -0.1 * 0.5 = -0.05; -0.1 * -1.0 = 0.1, plus the score 7 clipped to 5 on the last real token (index 1)
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.1 + 5.0, 0.0])


# ----------------------------------------------------------------------------------------------------- pairwise


def test_pairwise_loss_subtracts_the_margin():
    chosen, rejected = torch.tensor([3.0]), torch.tensor([1.0])
    softplus = lambda x: math.log(1.0 + math.exp(-x))  # noqa: E731 - -log sigmoid(x), written out
    assert rl.pairwise_loss(chosen, rejected).item() == pytest.approx(softplus(3.0 - 1.0))  # 0.126928
    # with margin 1 the gap that counts is 3 - 1 - 1 = 1: the loss grows (0.313262); a "+ margin" would shrink it
    assert rl.pairwise_loss(chosen, rejected, torch.tensor([1.0])).item() == pytest.approx(softplus(1.0))
    # a gap exactly equal to the margin is the loss of a tie: log 2
    assert rl.pairwise_loss(torch.tensor([2.0]), rejected, 1.0).item() == pytest.approx(math.log(2.0))
    # averaged over the batch
    both = rl.pairwise_loss(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    assert both.item() == pytest.approx((softplus(1.0) + math.log(2.0)) / 2)


def test_trajectory_model_inputs_are_the_whole_sequences():
    traj = rl.Trajectory(sequences=t([5.0, 6.0]), attention_mask=t([1.0, 1.0]), position_ids=t([0.0, 1.0]), start=0,
                         mask=t([1.0]), logprobs=t([0.0]), values=t([0.0]), advantages=t([0.0]), returns=t([0.0]),
                         score=t([0.0]), kl=t([0.0]))
    assert set(traj.model_inputs()) == {"input_ids", "attention_mask", "position_ids"}
    assert traj.model_inputs()["input_ids"] is traj.sequences


# ------------------------------------------------------------------------------------- the recipe's experience


class _UniformActor(torch.nn.Module):
    """Generates a fixed reply; every token equally likely (so actor and reference agree: KL 0)."""

    def __init__(self, reply: torch.Tensor, vocab: int) -> None:
        super().__init__()
        self.reply, self.vocab = reply, vocab

    @property
    def module(self) -> _UniformActor:  # what a DeepSpeed engine wraps; generation goes through it
        return self

    def generate(self, input_ids, attention_mask, **_: object):
        return torch.cat([input_ids, self.reply], dim=1)

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


class _ConstantValue(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return torch.full(input_ids.shape, self.value)


def test_ppo_experience_uses_whitened_advantages_and_raw_returns():
    from trainers.recipes.ppo import PPOConfig, make_experience

    eos, pad = 1, 0
    # Two prompts of two tokens; replies of 3 tokens: row 0 ends at its EOS (position 1), row 1 runs to the end.
    prompts = {"input_ids": torch.tensor([[7, 8], [9, 8]]), "attention_mask": torch.ones(2, 2, dtype=torch.long)}
    replies = torch.tensor([[5, eos, pad], [4, 4, 4]])
    actor = _UniformActor(replies, vocab=10)
    engines = {"actor": actor, "ref": actor, "critic": _ConstantValue(0.0), "reward": _ConstantValue(2.0)}
    cfg = PPOConfig(data="d", model="m", out="o", gamma=1.0, lam=1.0, kl_coef=0.1, clip_reward=5.0)
    traj = make_experience(engines, prompts, cfg, SimpleNamespace(pad_token_id=pad, eos_token_id=eos), synced=False)

    assert traj.mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    # KL 0, values 0, score 2 on the last real token, gamma = lam = 1: every raw advantage (and return) is 2.0 …
    assert traj.returns.tolist() == [[2.0, 2.0, 0.0], [2.0, 2.0, 2.0]]
    # … so whitening (mean 2, std 0) leaves 0 on every real token, not the raw 2.0
    assert traj.advantages.abs().max().item() < 1e-3
    assert traj.score.tolist() == [2.0, 2.0] and traj.kl.tolist() == [0.0, 0.0]


def test_ppo_experience_whitened_advantages_have_mean_0_and_std_1():
    from trainers.recipes.ppo import PPOConfig, make_experience

    eos, pad = 1, 0
    prompts = {"input_ids": torch.tensor([[7, 8], [9, 8]]), "attention_mask": torch.ones(2, 2, dtype=torch.long)}
    actor = _UniformActor(torch.tensor([[5, eos, pad], [4, 4, 4]]), vocab=10)
    engines = {"actor": actor, "ref": actor, "critic": _ConstantValue(0.5), "reward": _ConstantValue(3.0)}
    cfg = PPOConfig(data="d", model="m", out="o", gamma=0.9, lam=0.5, kl_coef=0.1, clip_reward=5.0)
    traj = make_experience(engines, prompts, cfg, SimpleNamespace(pad_token_id=pad, eos_token_id=eos), synced=False)

    real = traj.advantages[traj.mask.bool()]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert real.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert traj.advantages[0, 2].item() == 0.0  # the pad after row 0's EOS
    # the critic's target stays on the reward's scale: row 1's last token returns the score, 3.0
    assert traj.returns[1, 2].item() == pytest.approx(3.0)
