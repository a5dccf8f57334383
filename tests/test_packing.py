"""`trainers.components.packing`: layouts checked by hand, and per-example losses of a packed batch equal to those of
the padded batch (SFT token losses, reward-model pair losses) on the tiny presets, in training mode."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the trainers need the train extra")
pytest.importorskip("transformers", reason="the trainers need the train extra")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components import models, packing  # noqa: E402
from trainers.components.collate import IGNORE_INDEX, collate_pairs, collate_sft  # noqa: E402
from trainers.components.rl import pairwise_loss  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

PRESETS = ("tiny-gpt2", "tiny-llama")
LENGTHS = (3, 17, 5, 9, 2, 11, 6)  # uneven on purpose: several sequences share a row, some rows end in padding


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    helpers.train_tokenizer(path)
    return models.load_tokenizer(str(path), "tiny-llama")


def _random_ids(lengths, seed: int, vocab: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, size=n).astype(np.int64) for n in lengths]


def _training_model(preset: str, tokenizer, value: bool = False):
    """Training mode (where transformers would build a KV cache unless told not to), dropout off so passes compare."""
    torch.manual_seed(0)
    model = (models.load_value_model if value else models.load_causal_lm)(preset, tokenizer)
    models.disable_dropout(model)
    return model.train()


def test_first_fit_decreasing_by_hand():
    assert packing.first_fit_decreasing([5, 3, 4, 2], 5) == [[0], [2], [1, 3]]
    assert packing.first_fit_decreasing([2, 2, 2], 4) == [[0, 1], [2]]


def test_pack_layout_by_hand():
    packed = packing.pack([np.array([1, 2, 3]), np.array([4, 5]), np.array([6])], pad_id=0)
    assert packed["input_ids"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert packed["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    assert packed["sequence_index"].tolist() == [[0, 0, 0], [1, 1, 2]]
    assert packed["starts"].tolist() == [0, 3, 5]

    tail = packing.pack([np.array([7, 8, 9, 10]), np.array([11])], pad_id=0)  # 4 wide: [7 8 9 10] [11 pad pad pad]
    assert tail["input_ids"].tolist() == [[7, 8, 9, 10], [11, 0, 0, 0]]
    assert tail["position_ids"].tolist() == [[0, 1, 2, 3], [0, 0, 1, 2]]  # the pad tail is a segment of its own
    assert tail["sequence_index"].tolist() == [[0, 0, 0, 0], [1, -1, -1, -1]]


def test_packed_sft_labels_mask_prompts_first_tokens_and_padding():
    examples = [{"input_ids": np.array([1, 2, 3, 4]), "prompt_tokens": 2},
                {"input_ids": np.array([5, 6]), "prompt_tokens": 0},
                {"input_ids": np.array([7]), "prompt_tokens": 0}]
    batch = packing.collate_packed_sft(examples, pad_id=0)
    x = IGNORE_INDEX
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 0]]
    assert batch["labels"].tolist() == [[x, x, 3, 4], [x, 6, x, x]]
    assert set(packing.model_inputs(batch)) == {"input_ids", "position_ids", "labels", "use_cache"}


def test_packed_pairs_keep_order_and_index_last_tokens():
    examples = [{"chosen_input_ids": np.array([1, 2, 3]), "rejected_input_ids": np.array([4]), "margin": 0.5},
                {"chosen_input_ids": np.array([5, 6]), "rejected_input_ids": np.array([7, 8]), "margin": 0.0}]
    batch = packing.collate_packed_pairs(examples, pad_id=0)
    flat = batch["input_ids"].flatten()
    assert flat[batch["last_index"]].tolist() == [3, 6, 4, 8]  # chosen 0, chosen 1, rejected 0, rejected 1
    assert batch["margin"].tolist() == [0.5, 0.0]
    assert int((batch["sequence_index"] >= 0).sum()) == 8  # every real token, each pair inside this one batch


def test_sequence_sums_by_hand():
    values = torch.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    index = torch.tensor([[0, 0, 1], [1, -1, 2]])
    assert packing.sequence_sums(values, index, 3).tolist() == [3.0, 12.0, 32.0]


def _token_losses(logits, labels):
    """Next-token cross-entropy at every position (0 where the label is ignored)."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                             ignore_index=IGNORE_INDEX, reduction="none").view(labels[:, 1:].shape)


@pytest.mark.parametrize("preset", PRESETS)
def test_packed_sft_per_example_losses_equal_padded(preset, tokenizer):
    sequences = _random_ids(LENGTHS, seed=1, vocab=len(tokenizer))
    examples = [{"input_ids": s, "prompt_tokens": n // 3} for s, n in zip(sequences, LENGTHS, strict=True)]
    padded = collate_sft(examples, pad_id=tokenizer.pad_token_id)
    packed = packing.collate_packed_sft(examples, pad_id=tokenizer.pad_token_id)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    model = _training_model(preset, tokenizer)

    padded_out = model(**packing.model_inputs(padded))
    packed_out = model(**packing.model_inputs(packed))
    padded_losses = _token_losses(padded_out.logits, padded["labels"]).sum(-1)
    packed_losses = packing.sequence_sums(_token_losses(packed_out.logits, packed["labels"]),
                                          packed["sequence_index"][:, 1:], len(examples))
    assert packed_losses.tolist() == pytest.approx(padded_losses.tolist(), rel=1e-5, abs=1e-5)
    assert packed_out.loss.item() == pytest.approx(padded_out.loss.item(), rel=1e-5)


@pytest.mark.parametrize("preset", PRESETS)
def test_packed_pair_losses_equal_padded(preset, tokenizer):
    chosen = _random_ids(LENGTHS, seed=2, vocab=len(tokenizer))
    rejected = _random_ids(LENGTHS[::-1], seed=3, vocab=len(tokenizer))
    examples = [{"chosen_input_ids": c, "rejected_input_ids": r, "margin": 0.0}
                for c, r in zip(chosen, rejected, strict=True)]
    padded = collate_pairs(examples, pad_id=tokenizer.pad_token_id)
    packed = packing.collate_packed_pairs(examples, pad_id=tokenizer.pad_token_id)
    model = _training_model(preset, tokenizer, value=True)

    def pair_losses(batch):
        inputs = packing.model_inputs(batch)
        values = model(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("position_ids"))
        scores = packing.last_token_values(values, batch)
        return torch.stack([pairwise_loss(c, r, 0.0) for c, r in zip(*scores.chunk(2), strict=True)])

    assert pair_losses(packed).tolist() == pytest.approx(pair_losses(padded).tolist(), rel=1e-5, abs=1e-6)


def test_packed_preference_logprobs_equal_padded(tokenizer):
    from trainers.components import preference

    chosen = _random_ids(LENGTHS, seed=4, vocab=len(tokenizer))
    rejected = _random_ids(LENGTHS[::-1], seed=5, vocab=len(tokenizer))
    examples = [{"chosen_input_ids": c, "rejected_input_ids": r, "chosen_prompt_tokens": len(c) // 2,
                 "rejected_prompt_tokens": len(r) // 3, "index": i}
                for i, (c, r) in enumerate(zip(chosen, rejected, strict=True))]
    padded = preference.collate_preference_pairs(examples, tokenizer.pad_token_id)
    packed = preference.collate_preference_pairs(examples, tokenizer.pad_token_id, rows=packing.collate_packed_sft)
    model = _training_model("tiny-llama", tokenizer)
    padded_logps, padded_tokens = preference.batch_logprobs(model, padded)
    packed_logps, packed_tokens = preference.batch_logprobs(model, packed)
    assert packed_tokens.tolist() == padded_tokens.tolist()
    assert packed_logps.tolist() == pytest.approx(padded_logps.tolist(), rel=1e-5)
    assert packed["index"].tolist() == list(range(len(examples)))


def test_packing_refuses_attention_that_would_cross_boundaries():
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    with pytest.raises(PrefdataError, match="packing"):
        packing.check_packing_support(flash)
    packing.check_packing_support(SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa")))
