"""Padding-free packing (``--packing``): a micro-batch's sequences laid end to end, so no compute goes to pad tokens.

A padded micro-batch is as wide as its longest row, and on chat data (long-tailed lengths) most of it is padding. A
packed one puts several sequences in each row, first-fit decreasing into rows as wide as the longest sequence; each
sequence's position ids restart at 0, and the unused tail of a row is one more segment of pad tokens.

Attention never crosses a sequence boundary: the batch carries no 2-D attention mask, only ``position_ids``, and
transformers (`masking_utils.find_packed_sequence_indices`) turns each restart of the positions into a
block-diagonal causal mask for sdpa and eager attention. It does so only when no KV cache is built, hence
`model_inputs` adds ``use_cache=False``. With the same examples in the same micro-batches, every per-example loss equals
the padded one up to float rounding, so a packed run follows the padded run's trajectory (`tests/test_packing.py`).

The two replies of a pair are packed into the micro-batch of their example, so a pair never straddles two steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prefdata.contract.errors import PrefdataError
from trainers.components.collate import IGNORE_INDEX
from trainers.components.models import last_token_scores

# What a causal LM's forward takes from a batch; the rest (sequence_index, last_index, margin) is for the loss.
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "labels")
# Attention implementations for which transformers builds the block-diagonal mask from position ids on any batch shape.
# flash_attention_2 reads packed positions only on a batch of one row and would attend across rows' boundaries here.
MASKED_ATTENTION = ("sdpa", "eager", "flex_attention")


def first_fit_decreasing(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Sequence indices per row: longest first, each into the first row with room (ties keep example order)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


def pack(sequences: Sequence[np.ndarray], pad_id: int) -> dict[str, Any]:
    """Token ids packed into rows, with restarting ``position_ids``, each token's ``sequence_index`` (-1: padding) and
    ``starts``, the flat offset of each sequence's first token in ``input_ids.flatten()``."""
    import torch

    lengths = [len(s) for s in sequences]
    width = max(lengths)
    rows = first_fit_decreasing(lengths, width)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    position_ids = np.empty((len(rows), width), dtype=np.int64)
    sequence_index = np.full((len(rows), width), -1, dtype=np.int64)
    starts = np.empty(len(sequences), dtype=np.int64)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            end = at + lengths[i]
            input_ids[r, at:end] = sequences[i]
            position_ids[r, at:end] = np.arange(lengths[i])
            sequence_index[r, at:end] = i
            starts[i] = r * width + at
            at = end
        position_ids[r, at:] = np.arange(width - at)  # the pad tail restarts too: no real token attends to it
    return {"input_ids": torch.from_numpy(input_ids), "position_ids": torch.from_numpy(position_ids),
            "sequence_index": torch.from_numpy(sequence_index), "starts": torch.from_numpy(starts),
            "lengths": torch.tensor(lengths, dtype=torch.long)}


def collate_packed_sft(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """`collate_sft` without padding: labels are the ids with each sequence's prompt, its first token (which the
    previous sequence's last token would otherwise predict) and the pad tail set to -100."""
    packed = pack([e["input_ids"] for e in examples], pad_id)
    labels = packed["input_ids"].masked_fill(packed["sequence_index"] < 0, IGNORE_INDEX)
    flat = labels.view(-1)
    for i, e in enumerate(examples):
        start = int(packed["starts"][i])
        flat[start : start + max(int(e.get("prompt_tokens", 0)), 1)] = IGNORE_INDEX
    return {"input_ids": packed["input_ids"], "position_ids": packed["position_ids"], "labels": labels,
            "sequence_index": packed["sequence_index"]}


def collate_packed_pairs(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """`collate_pairs` without padding: chosen sequences are 0..n-1 and rejected n..2n-1 in ``sequence_index``, and
    ``last_index`` is each one's last token in ``input_ids.flatten()`` (where a reward model scores it)."""
    import torch

    sequences = [e["chosen_input_ids"] for e in examples] + [e["rejected_input_ids"] for e in examples]
    packed = pack(sequences, pad_id)
    margin = torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float32)
    return {"input_ids": packed["input_ids"], "position_ids": packed["position_ids"],
            "sequence_index": packed["sequence_index"], "last_index": packed["starts"] + packed["lengths"] - 1,
            "margin": margin}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the model's forward for a padded or a packed batch. ``use_cache=False``: with a KV cache
    transformers skips the packed-sequence mask and attention would run across sequence boundaries."""
    return {key: value for key, value in batch.items() if key in MODEL_INPUTS} | {"use_cache": False}


def last_token_values(values: Any, batch: dict[str, Any]) -> Any:
    """Per-token ``values`` at each sequence's last token, in example order, for a padded or a packed batch."""
    if "last_index" in batch:
        return values.flatten()[batch["last_index"]]
    return last_token_scores(values, batch["attention_mask"])


def sequence_sums(values: Any, sequence_index: Any, count: int) -> Any:
    """Per-token ``values`` summed over each of ``count`` sequences, padding (index -1) dropped: per-example losses or
    log-probabilities of a packed batch. For values of next-token predictions pass ``sequence_index[:, 1:]``."""
    index = sequence_index.flatten()
    keep = index >= 0
    return values.new_zeros(count).index_add(0, index[keep], values.flatten()[keep])


def check_packing_support(model: Any) -> None:
    """Refuse ``--packing`` where attention would silently cross sequence boundaries (old transformers, flash-attn)."""
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError:
        raise PrefdataError("--packing needs a transformers that masks packed sequences by their position ids "
                            "(transformers.masking_utils.find_packed_sequence_indices)",
                            field="packing") from None
    config = getattr(model, "config", None) or model.model.config
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation not in MASKED_ATTENTION:
        raise PrefdataError(f"--packing needs {', '.join(MASKED_ATTENTION)} attention, not {implementation}",
                            field="packing")
