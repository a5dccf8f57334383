"""Tests that kill mutants of `trainers/components/reward_scoring.py` (issue #15): the checkpoint digest (which files,
in which order, framed how) and the scorer on a tiny reward checkpoint saved here (word-level tokenizer trained in the
test, a one-layer GPT-2 with a score head): the token ids it builds, left truncation, and each score equal to the
value head at the sequence's last token when the sequence is run alone.

Equivalent survivors (one line each):
- `checkpoint_sha256` reading blocks of ``2 << 20`` bytes or the whole file at once: the digest of the bytes is the same.
- `score` starting its list at ``[1.0] * n``: every slot is written with its item's score.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from trainers.components.reward_scoring import RewardModelScorer, checkpoint_sha256  # noqa: E402

VOCABULARY = "Human Assistant : hi yes no the cat sat on a mat"


def framed(name: str, data: bytes) -> bytes:
    return name.encode() + b"\0" + data + b"\0"


def test_checkpoint_digest_covers_config_and_weights_by_name(tmp_path: Path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"bin")
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "model.safetensors").write_bytes(b"st")
    (tmp_path / "tokenizer.json").write_bytes(b"not a weight")
    (tmp_path / "dir.bin").mkdir()  # a folder with a weight-like name is no weight file
    expected = hashlib.sha256(framed("config.json", b"{}") + framed("model.safetensors", b"st")
                              + framed("pytorch_model.bin", b"bin")).hexdigest()
    assert checkpoint_sha256(tmp_path) == expected
    assert checkpoint_sha256(str(tmp_path)) == expected


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("rm")
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([VOCABULARY], trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>",
                                                     unk_token="<unk>")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64, vocab_size=len(tokenizer),
                                     num_labels=1, pad_token_id=tokenizer.pad_token_id)
    transformers.GPT2ForSequenceClassification(config).save_pretrained(path)
    return path


def ids(tokenizer, words: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids(words.split())


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_token_ids_are_the_rendered_pair_with_eos_cut_from_the_left(checkpoint: Path):
    scorer = RewardModelScorer(checkpoint, batch_size=0, max_seq_len=7)
    eos = scorer.tokenizer.eos_token_id
    assert scorer.batch_size == 1
    assert scorer.token_ids([(ask("hi"), "yes")]) == [ids(scorer.tokenizer, "Human : hi Assistant : yes") + [eos]]
    # 9 tokens + EOS, 7 kept: the end, where the reply and the EOS sit
    assert scorer.token_ids([(ask("the cat sat"), "on a")]) == [ids(scorer.tokenizer, "cat sat Assistant : on a") + [eos]]


def test_describe_names_the_checkpoint_its_digest_and_the_rendering(checkpoint: Path):
    scorer = RewardModelScorer(str(checkpoint), template="chatml", max_seq_len=9)
    assert scorer.describe() == {"reward_model": str(checkpoint), "reward_model_sha256": checkpoint_sha256(checkpoint),
                                 "template": "chatml", "max_seq_len": 9}
    assert scorer.spec.phase == "rm" and scorer.spec.truncation == "left"


def test_each_score_is_the_value_at_its_last_token_whatever_the_batching(checkpoint: Path):
    scorer = RewardModelScorer(checkpoint, batch_size=2)
    items = [(ask("the cat sat on a mat"), "yes"), (ask("hi"), "no"), (ask("the cat"), "sat on the mat"),
             (ask("hi"), "yes")]
    alone = []
    with torch.no_grad():
        for sequence in scorer.token_ids(items):
            values = scorer.model(input_ids=torch.tensor([sequence]), attention_mask=torch.ones(1, len(sequence)))
            alone.append(float(values[0, -1]))
    assert len(set(alone)) == 4  # a score put in another item's place would show
    assert scorer.score(items) == pytest.approx(alone, abs=1e-5)
    assert scorer.model.training is False


def test_items_go_through_the_model_in_batches_of_batch_size_shortest_first(checkpoint: Path):
    scorer = RewardModelScorer(checkpoint, batch_size=2)
    model, batches = scorer.model, []

    def recording(input_ids, attention_mask):
        batches.append(attention_mask.sum(dim=1).tolist())
        return model(input_ids=input_ids, attention_mask=attention_mask)

    scorer.model = recording
    items = [(ask("the cat sat on a mat"), "yes"), (ask("hi"), "no"), (ask("the cat"), "sat on the mat"),
             (ask("hi"), "yes")]
    scorer.score(items)
    # lengths (with EOS): 12, 7, 11, 7
    assert batches == [[7, 7], [11, 12]]


def test_defaults(checkpoint: Path):
    scorer = RewardModelScorer(checkpoint)
    assert scorer.batch_size == 16
    assert (scorer.describe()["template"], scorer.describe()["max_seq_len"]) == ("dschat", 512)


def test_quiet_silences_transformers_logging(checkpoint: Path):
    before = transformers.utils.logging.get_verbosity()
    try:
        transformers.utils.logging.set_verbosity_info()
        RewardModelScorer(checkpoint)
        assert transformers.utils.logging.get_verbosity() == logging.INFO
        RewardModelScorer(checkpoint, quiet=True)
        assert transformers.utils.logging.get_verbosity() == logging.ERROR
    finally:
        transformers.utils.logging.set_verbosity(before)
