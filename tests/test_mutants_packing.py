"""Tests that kill mutants of `trainers/components/packing.py` the suite let survive (issue #15); layouts and values
worked out by hand.

Equivalent survivors (one line each):
- `pack`: ``sequence_index`` filled with -1 and no dtype: numpy's default integer for a Python int, int64 (Linux).
- `collate_packed_sft`: ``e.get("prompt_tokens", 1)``: ``max(..., 1)`` masks the first token either way.
- `collate_packed_pairs`: ``margin`` with no dtype: torch makes Python floats float32, the dtype given.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the trainers need the train extra")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components import packing  # noqa: E402


def _model(implementation: str | None) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(_attn_implementation=implementation))


def test_model_inputs_keep_only_the_forwards_arguments_and_turn_the_kv_cache_off():
    batch = {"input_ids": 1, "attention_mask": 2, "position_ids": 3, "labels": 4, "sequence_index": 5, "margin": 6}
    assert packing.model_inputs(batch) == {"input_ids": 1, "attention_mask": 2, "position_ids": 3, "labels": 4,
                                           "use_cache": False}


def test_last_token_values_of_a_padded_and_a_packed_batch():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    padded = {"attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}  # last real tokens: 2.0 and 6.0
    assert packing.last_token_values(values, padded).tolist() == [2.0, 6.0]
    packed = {"last_index": torch.tensor([4, 0])}  # flat positions: 5.0, then 1.0
    assert packing.last_token_values(values, packed).tolist() == [5.0, 1.0]


def test_pack_records_each_sequences_length():
    packed = packing.pack([np.array([1, 2]), np.array([3, 4, 5]), np.array([6])], pad_id=0)
    assert packed["lengths"].tolist() == [2, 3, 1] and packed["lengths"].dtype == torch.long


def test_packed_ids_are_int64_whatever_type_the_pad_id_has():
    """Embeddings and the loss take int64 ids; a pad id read from numpy (int32 here) must not narrow them."""
    packed = packing.pack([np.array([1, 2]), np.array([3])], pad_id=np.int32(0))
    assert packed["input_ids"].dtype == torch.int64 and packed["input_ids"].tolist() == [[1, 2], [3, 0]]


def test_packed_sft_without_prompt_tokens_masks_only_each_first_token():
    batch = packing.collate_packed_sft([{"input_ids": np.array([1, 2, 3])}, {"input_ids": np.array([4, 5])}], pad_id=0)
    assert batch["labels"].tolist() == [[-100, 2, 3], [-100, 5, -100]]


def test_packing_support_message_and_field_name_the_attention():
    with pytest.raises(PrefdataError) as refused:
        packing.check_packing_support(_model("flash_attention_2"))
    assert refused.value.field == "packing"
    assert refused.value.message == "--packing needs sdpa, eager, flex_attention attention, not flash_attention_2"


@pytest.mark.parametrize("implementation", [None, "eager", "flex_attention"])
def test_packing_support_accepts_masked_attention_and_reads_unset_as_eager(implementation):
    packing.check_packing_support(_model(implementation))


def test_packing_support_reads_a_wrapped_models_config():
    """A value model keeps its causal LM as ``.model`` and has no config of its own."""
    wrapped = SimpleNamespace(config=None, model=_model("flash_attention_2"))
    with pytest.raises(PrefdataError, match="not flash_attention_2"):
        packing.check_packing_support(wrapped)
    packing.check_packing_support(SimpleNamespace(model=_model("sdpa")))


def test_packing_support_needs_a_transformers_that_masks_packed_sequences(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers.masking_utils", None)  # the import then raises ImportError
    with pytest.raises(PrefdataError) as refused:
        packing.check_packing_support(_model("sdpa"))
    assert refused.value.field == "packing"
    assert refused.value.message == ("--packing needs a transformers that masks packed sequences by their position "
                                     "ids (transformers.masking_utils.find_packed_sequence_indices)")
