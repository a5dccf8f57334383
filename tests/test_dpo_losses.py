"""The preference losses of `trainers.components.preference` against values worked out by hand (exact to float32).

Hand computations, with p = policy, r = reference summed log-probs, n = reply tokens:
- DPO, beta 0.5: p_c=-1, p_r=-3, r_c=r_r=-2 -> z = 0.5 * ((-1+2) - (-3+2)) = 1, loss = log(1 + e^-1) = 0.3132617;
  with label smoothing 0.1: 0.9 * log(1 + e^-1) + 0.1 * log(1 + e^1) = 0.4132617.
- IPO, beta 0.5, n_c=2, n_r=4: (1/2) - (-1/4) = 0.75, target 1 / (2 * 0.5) = 1, loss (0.75 - 1)^2 = 0.0625.
- SimPO, beta 2, gamma 0.5: 2 * (-1/2) = -1, 2 * (-3/4) = -1.5, z = -1 + 1.5 - 0.5 = 0, loss = log 2.
- KTO, beta 1, z0 0.5, log-ratio 1: desirable 1 - sigmoid(0.5) = 0.3775407; undesirable (weight 2)
  2 * (1 - sigmoid(-0.5)) = 1.2449187.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from trainers.components import preference  # noqa: E402


def t(*values: float):
    return torch.tensor(values, dtype=torch.float32)


def test_sigmoid_dpo_with_and_without_label_smoothing():
    losses, chosen, rejected = preference.dpo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.5)
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert (chosen.item(), rejected.item()) == pytest.approx((0.5, -0.5))
    smoothed, _, _ = preference.dpo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.5, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(0.9 * math.log(1 + math.exp(-1)) + 0.1 * math.log(1 + math.e), abs=1e-6)


def test_dpo_loss_is_log_2_when_policy_equals_reference():
    losses, chosen, rejected = preference.dpo_loss(t(-4, -7), t(-5, -1), t(-4, -7), t(-5, -1), beta=0.1)
    assert losses.tolist() == pytest.approx([math.log(2)] * 2)
    assert chosen.tolist() == rejected.tolist() == [0.0, 0.0]


def test_ipo_uses_length_averaged_log_ratios():
    losses, chosen, rejected = preference.ipo_loss(t(-1), t(-3), t(-2), t(-2), t(2), t(4), beta=0.5)
    assert losses.item() == pytest.approx(0.0625)
    assert (chosen.item(), rejected.item()) == pytest.approx((0.25, -0.125))


def test_simpo_is_reference_free_with_length_normalisation_and_target_margin():
    losses, chosen, rejected = preference.simpo_loss(t(-1), t(-3), t(2), t(4), beta=2.0, gamma=0.5)
    assert losses.item() == pytest.approx(math.log(2))
    assert (chosen.item(), rejected.item()) == pytest.approx((-1.0, -1.5))
    via_dispatch = preference.preference_loss("simpo", (t(-1), t(-3)), None, (t(2), t(4)), beta=2.0,
                                              label_smoothing=0.0, gamma=0.5)
    assert via_dispatch[0].item() == pytest.approx(math.log(2))


def test_losses_needing_a_reference_refuse_to_run_without_one():
    with pytest.raises(ValueError, match="reference"):
        preference.preference_loss("dpo", (t(-1), t(-3)), None, (t(2), t(4)), beta=0.1, label_smoothing=0.0, gamma=0.0)


def test_kto_weights_desirable_and_undesirable_replies_around_the_kl_estimate():
    losses, rewards = preference.kto_loss(t(-1, -1), t(-2, -2), torch.tensor([True, False]), torch.tensor(0.5),
                                          beta=1.0, desirable_weight=1.0, undesirable_weight=2.0)
    sigmoid = 1 / (1 + math.exp(-0.5))
    assert losses.tolist() == pytest.approx([1 - sigmoid, 2 * (1 - (1 - sigmoid))], abs=1e-6)
    assert rewards.tolist() == [1.0, 1.0]


def test_kto_kl_estimate_is_a_non_negative_mean_over_ranks():
    assert preference.kto_kl_estimate(t(-1, -3), t(-2, -1)).item() == 0.0  # mean -0.5, clamped
    assert preference.kto_kl_estimate(t(-1, -1), t(-2, -1.5)).item() == pytest.approx(0.75)
    # Another rank holding log-ratios summing to 2.5 over 2 replies: (1.5 + 2.5) / (2 + 2) = 1.
    other_rank = [2.5, 2.0]
    reduce = lambda totals: [a + b for a, b in zip(totals, other_rank)]  # noqa: E731
    assert preference.kto_kl_estimate(t(-1, -1), t(-2, -1.5), reduce).item() == pytest.approx(1.0)


def test_sequence_logprobs_sum_the_labelled_tokens_only():
    logits = torch.zeros(1, 4, 4)  # uniform over 4 tokens: log p = log 1/4 everywhere
    labels = torch.tensor([[-100, 2, 3, -100]])  # position t's logits predict labels[t + 1]: two reply tokens
    total, count = preference.sequence_logprobs(logits, labels)
    assert total.item() == pytest.approx(2 * math.log(0.25))
    assert count.item() == 2


def test_reference_logprobs_are_computed_once_per_example_and_averaged_over_duplicates():
    from types import SimpleNamespace

    vocab = 5  # a fake model with all-zero logits: every token has log p = log(1/5), so a reply scores n * log(1/5)

    def forward(input_ids, attention_mask):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, vocab))

    rows = [{"chosen_input_ids": [1, 2, 3], "chosen_prompt_tokens": 1, "rejected_input_ids": [1, 4],
             "rejected_prompt_tokens": 1}, {"chosen_input_ids": [2, 2], "chosen_prompt_tokens": 1,
                                            "rejected_input_ids": [2, 3, 3, 3], "rejected_prompt_tokens": 1}]
    import numpy as np

    data = preference.Indexed([{k: np.asarray(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows])
    first = preference.collate_preference_pairs([data[0], data[1]], pad_id=0)
    again = preference.collate_preference_pairs([data[1]], pad_id=0)  # example 1 seen twice (sampler padding)
    cached = preference.reference_logprobs(forward, [first, again], 2, reduce=lambda x: x)
    per_token = math.log(1 / vocab)
    assert cached.tolist() == [pytest.approx([2 * per_token, per_token]), pytest.approx([per_token, 3 * per_token])]
