"""Tests that kill mutants of `trainers/components/preference.py` the suite let survive (issue #15); values worked
out by hand.

Equivalent survivors (one line each):
- `kto_kl_estimate` with ``device=None``: the tests run on CPU, where the default device is the log-ratios' device.
"""

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


def _kto_example(ids: list[int], prompt_tokens: int, label: bool) -> dict:
    import numpy as np

    return {"input_ids": np.array(ids, dtype=np.int64), "prompt_tokens": prompt_tokens, "label": label}


def test_mismatched_pairs_each_prompt_with_the_next_examples_reply_wrapping_around():
    # prompts [1, 2], [5] and [8]; replies [3], [6, 7] and [9]: 0 takes [6, 7], 1 takes [9], 2 wraps round to [3]
    cache = [_kto_example([1, 2, 3], 2, True), _kto_example([5, 6, 7], 1, False), _kto_example([8, 9], 1, True)]
    first, second, third = (preference.Mismatched(cache)[i] for i in range(3))
    assert first["kl_input_ids"].tolist() == [1, 2, 6, 7] and first["kl_prompt_tokens"] == 2
    assert second["kl_input_ids"].tolist() == [5, 9] and second["kl_prompt_tokens"] == 1
    assert third["kl_input_ids"].tolist() == [8, 3] and third["kl_prompt_tokens"] == 1
    assert [first["index"], second["index"], third["index"]] == [0, 1, 2] and first["input_ids"].tolist() == [1, 2, 3]


def test_collate_labelled_puts_the_replies_then_their_mismatched_pairs_with_labels_and_index():
    examples = [{**_kto_example([1, 2, 3], 2, True), "kl_input_ids": [1, 2, 6, 7], "kl_prompt_tokens": 2, "index": 4},
                {**_kto_example([5, 6, 7], 1, False), "kl_input_ids": [5, 3], "kl_prompt_tokens": 1, "index": 9}]
    batch = preference.collate_labelled(examples, pad_id=0)
    ignore = -100
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0], [5, 6, 7, 0], [1, 2, 6, 7], [5, 3, 0, 0]]
    assert batch["labels"].tolist() == [[ignore, ignore, 3, ignore], [ignore, 6, 7, ignore],
                                        [ignore, ignore, 6, 7], [ignore, 3, ignore, ignore]]
    assert batch["desirable"].tolist() == [True, False] and batch["index"].tolist() == [4, 9]


def test_simpo_defaults_to_no_label_smoothing_and_averages_a_one_token_reply_by_one():
    # chosen reward 2 * -1 / 1 = -2, rejected 2 * -4 / 2 = -4; z = -2 - -4 - 1 = 1: loss -log σ(1)
    losses, chosen, rejected = preference.simpo_loss(t(-1), t(-4), t(1), t(2), beta=2.0, gamma=1.0)
    assert chosen.tolist() == [-2.0] and rejected.tolist() == [-4.0]
    assert losses.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1))))


def test_simpo_through_preference_loss_keeps_label_smoothing():
    # z = 1 as above; loss = -(1 - 0.2) log σ(1) - 0.2 log σ(-1)
    losses, _, _ = preference.preference_loss("simpo", (t(-1), t(-4)), None, (t(1), t(2)), beta=2.0,
                                              label_smoothing=0.2, gamma=1.0)
    sigmoid = 1 / (1 + math.exp(-1))
    assert losses.item() == pytest.approx(-0.8 * math.log(sigmoid) - 0.2 * math.log(1 - sigmoid))


def test_ipo_through_preference_loss_averages_by_reply_tokens():
    # chosen ratio (-2 - -4) / 2 = 1, rejected (-6 - -3) / 3 = -1; target 1 / (2 * 0.25) = 2: loss (1 + 1 - 2)^2 = 0
    losses, chosen, rejected = preference.preference_loss("ipo", (t(-2), t(-6)), (t(-4), t(-3)), (t(2), t(3)),
                                                          beta=0.25, label_smoothing=0.0, gamma=0.0)
    assert losses.tolist() == [0.0] and chosen.tolist() == [0.25] and rejected.tolist() == [-0.25]


def test_kto_rewards_are_beta_times_the_log_ratio():
    # log-ratios -1 - -3 = 2 and -5 - -1 = -4; beta 0.5: rewards 1 and -2
    _, rewards = preference.kto_loss(t(-1, -5), t(-3, -1), torch.tensor([True, False]), t(0), beta=0.5)
    assert rewards.tolist() == [1.0, -2.0]


def test_sequence_logprobs_of_a_packed_row_by_hand():
    # one row holding two sequences of two tokens; each sequence's first label is masked, as `collate_packed_sft` does.
    # logits at 0 predict label 1 with p = 3/4; logits at 2 predict label 0 with p = 1/2
    logits = torch.tensor([[[0.0, math.log(3)], [5.0, 5.0], [0.0, 0.0], [1.0, 2.0]]])
    labels = torch.tensor([[-100, 1, -100, 0]])
    sums, counts = preference.sequence_logprobs(logits, labels, torch.tensor([[0, 0, 1, 1]]))
    assert sums.tolist() == pytest.approx([math.log(3 / 4), math.log(1 / 2)]) and counts.tolist() == [1, 1]


class UniformLM:
    """A causal LM whose every next-token distribution is uniform over ``vocab`` ids: each labelled token adds
    ``-log(vocab)``. Records the keyword arguments of each call."""

    def __init__(self, vocab: int) -> None:
        self.vocab, self.calls = vocab, []

    def __call__(self, **inputs):
        from types import SimpleNamespace

        self.calls.append(inputs)
        return SimpleNamespace(logits=torch.zeros(*inputs["input_ids"].shape, self.vocab))


@pytest.mark.parametrize("packed", [False, True])
def test_batch_logprobs_cover_each_reply_padded_or_packed(packed):
    import numpy as np

    from trainers.components.packing import collate_packed_sft

    def ids(*values: int):
        return np.array(values, dtype=np.int64)

    examples = [{"chosen_input_ids": ids(5, 6, 7), "chosen_prompt_tokens": 1, "rejected_input_ids": ids(5, 8),
                 "rejected_prompt_tokens": 1, "index": 3},
                {"chosen_input_ids": ids(9, 9, 9, 9), "chosen_prompt_tokens": 2, "rejected_input_ids": ids(9, 3, 3),
                 "rejected_prompt_tokens": 1, "index": 0}]
    rows = {"rows": collate_packed_sft} if packed else {}
    batch = preference.collate_preference_pairs(examples, 0, **rows)
    model = UniformLM(vocab=10)
    logps, tokens = preference.batch_logprobs(model, batch)
    # reply tokens: chosen 3 - 1 and 4 - 2, rejected 2 - 1 and 3 - 1
    assert tokens.tolist() == [2, 2, 1, 2] and batch["index"].tolist() == [3, 0]
    assert logps.tolist() == pytest.approx([-2 * math.log(10), -2 * math.log(10), -math.log(10), -2 * math.log(10)])
    (call,) = model.calls
    if packed:
        assert set(call) == {"input_ids", "position_ids", "use_cache"} and call["use_cache"] is False
    else:
        assert set(call) == {"input_ids", "attention_mask"}
