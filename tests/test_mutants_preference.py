"""Tests that kill mutants of `trainers/components/preference.py` the suite let survive (issue #15); values worked
out by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from trainers.components import preference  # noqa: E402


def t(*values: float):
    return torch.tensor(values, dtype=torch.float64)


def test_ipo_divides_a_one_token_reply_by_one():
    # chosen ratio (-1 - -2) / 1 = 1, rejected ratio (-3 - -2) / 1 = -1; target 1 / (2 * 0.5) = 1: loss (1 + 1 - 1)^2 = 1
    losses, chosen, rejected = preference.ipo_loss(t(-1), t(-3), t(-2), t(-2), t(1), t(1), beta=0.5)
    assert losses.tolist() == [1.0] and chosen.tolist() == [0.5] and rejected.tolist() == [-0.5]


def test_dpo_through_preference_loss_keeps_label_smoothing():
    # z = 0.1 * ((-1 - -2) - (-3 - -2)) = 0.2; loss = -(0.9) log σ(0.2) - 0.1 log σ(-0.2)
    losses, _, _ = preference.preference_loss("dpo", (t(-1), t(-3)), (t(-2), t(-2)), (t(1), t(1)), beta=0.1,
                                              label_smoothing=0.1, gamma=0.0)
    sigmoid = 1 / (1 + math.exp(-0.2))
    assert losses.item() == pytest.approx(-0.9 * math.log(sigmoid) - 0.1 * math.log(1 - sigmoid))


def test_unknown_loss_names_the_losses():
    with pytest.raises(ValueError, match=r"unknown loss 'orpo'; choose one of dpo, ipo, simpo"):
        preference.preference_loss("orpo", (t(0), t(0)), (t(0), t(0)), (t(1), t(1)), beta=0.1, label_smoothing=0.0,
                                   gamma=0.0)
