"""Batches from a `TokenCache`: rows are stored unpadded, so padding (and the label mask) happens here, per batch,
to the longest row of the batch."""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE_INDEX = -100


def _pad(sequences: list[np.ndarray], value: int, left: bool = False, multiple: int = 1):
    import torch

    width = max(len(s) for s in sequences)
    width = -(-width // multiple) * multiple
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        n = len(s)
        sl = slice(width - n, width) if left else slice(0, n)
        out[i, sl] = torch.from_numpy(np.asarray(s, dtype=np.int64))
        mask[i, sl] = 1
    return out, mask


def collate_sft(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest row; labels are the ids with the prompt and the padding set to -100."""
    input_ids, attention_mask = _pad([e["input_ids"] for e in examples], pad_id)
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    for i, e in enumerate(examples):
        labels[i, : int(e.get("prompt_tokens", 0))] = IGNORE_INDEX
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_pairs(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Chosen rows then rejected rows in one right-padded batch (one forward pass scores both)."""
    import torch

    sequences = [e["chosen_input_ids"] for e in examples] + [e["rejected_input_ids"] for e in examples]
    input_ids, attention_mask = _pad(sequences, pad_id)
    margin = torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "margin": margin}


def collate_prompts(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Left-pad prompts so that generation continues right after each prompt's last token."""
    input_ids, attention_mask = _pad([e["prompt_input_ids"] for e in examples], pad_id, left=True)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
