"""Tests that kill mutants of `trainers/components/collate.py` the suite let survive (issue #15): padding side,
dtypes, key names and the default of `prompt_tokens`, each batch written out by hand.

Equivalent mutants left alive: ``np.asarray(s)`` without ``dtype=np.int64`` (the row is copied into a long tensor,
which casts), ``torch.full(..., dtype=None)`` (an int fill value gives int64 anyway), and ``slice(width - n, None)``
for ``slice(width - n, width)`` (the same positions)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainers.components.collate import IGNORE_INDEX, collate_pairs, collate_prompts, collate_sft  # noqa: E402

PAD = 0


def rows(*lengths: int, start: int = 1) -> list[np.ndarray]:
    """Rows of token ids 1, 2, 3, … as the token store hands them out (int32 views)."""
    out, next_id = [], start
    for n in lengths:
        out.append(np.arange(next_id, next_id + n, dtype=np.int32))
        next_id += n
    return out


def test_sft_batch_is_right_padded_long_with_prompt_and_padding_ignored():
    a, b = rows(3, 1)
    batch = collate_sft([{"input_ids": a, "prompt_tokens": 1}, {"input_ids": b}], PAD)  # b: no prompt_tokens key
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long


def test_pair_batch_is_chosen_rows_then_rejected_rows_right_padded():
    chosen, rejected = rows(2, 3)
    batch = collate_pairs([{"chosen_input_ids": chosen, "rejected_input_ids": rejected, "margin": 0.5}], PAD)
    assert set(batch) == {"input_ids", "attention_mask", "margin"}
    assert batch["input_ids"].tolist() == [[1, 2, PAD], [3, 4, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["margin"].tolist() == [0.5]


def test_prompts_are_left_padded_so_generation_continues_after_the_last_token():
    a, b = rows(1, 3)
    batch = collate_prompts([{"prompt_input_ids": a}, {"prompt_input_ids": b}], PAD)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[PAD, PAD, 1], [2, 3, 4]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1], [1, 1, 1]]
    assert batch["attention_mask"].dtype == torch.long
