"""Tests that kill mutants of `trainers/components/models.py` (issue #15): which model specs are accepted, the
tokenizer's EOS / pad rules, configs sized to the tokenizer, loading a checkpoint with and without a trained reward
head, the value model and the score at the last real token, on word-level tokenizers trained here and tiny models
built from configs (no weights, no download).

Equivalent survivors (one line each):
- `model_config` reading ``config:FILE.json`` with ``encoding=None`` or ``"UTF-8"``: the same codec under the UTF-8
  locale the tools run in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components import models  # noqa: E402

VOCABULARY = "the cat sat on a mat"
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0, 1, 2, 3


def save_tokenizer(path: Path, **special: str) -> Path:
    """A word-level tokenizer (6 words + 4 specials = 10 ids) saved with the given special tokens."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tokenizer_models

    tok = Tokenizer(tokenizer_models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([VOCABULARY], trainers.WordLevelTrainer(special_tokens=SPECIALS))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **special).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return save_tokenizer(tmp_path_factory.mktemp("tok"), eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return models.load_tokenizer(None, str(tokenizer_dir))


def test_model_specs_accepted_and_refused(tmp_path: Path):
    config = tmp_path / "gpt2.json"
    config.write_text("{}", encoding="utf-8")
    for spec in (str(tmp_path), "tiny-gpt2", "tiny-llama", f"config:{config}"):
        models.check_model_spec(spec)
    for spec in ("tiny-bert", f"config:{tmp_path / 'missing.json'}", f"config:{tmp_path}", str(config)):
        with pytest.raises(PrefdataError) as e:
            models.check_model_spec(spec, option="reward_model")
        assert str(e.value) == (f"reward_model: {spec!r} is neither a model dir, a preset (tiny-gpt2, tiny-llama) nor "
                                "config:FILE.json")
    with pytest.raises(PrefdataError) as e:
        models.check_model_spec("nothing")
    assert e.value.field == "model"


def test_tokenizer_from_the_model_dir_or_from_tokenizer(tmp_path: Path, tokenizer_dir: Path):
    tokenizer = models.load_tokenizer(None, str(tokenizer_dir))
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer)) == (1, 0, 10)
    assert models.load_tokenizer(str(tokenizer_dir), "tiny-gpt2").eos_token_id == 1
    with pytest.raises(PrefdataError) as e:
        models.load_tokenizer(None, "tiny-gpt2")
    assert str(e.value) == "tokenizer: --model tiny-gpt2 is not a directory: give --tokenizer DIR"
    with pytest.raises(PrefdataError, match="is neither a model dir"):
        models.load_tokenizer(str(tokenizer_dir), "no-such-model")


def test_a_pad_token_defaults_to_eos_and_an_eos_is_required(tmp_path: Path):
    no_pad = models.load_tokenizer(None, str(save_tokenizer(tmp_path / "no_pad", eos_token="</s>")))
    assert (no_pad.pad_token, no_pad.pad_token_id) == ("</s>", 1)
    no_eos = str(save_tokenizer(tmp_path / "no_eos", pad_token="<pad>"))
    with pytest.raises(PrefdataError) as e:
        models.load_tokenizer(None, no_eos)
    assert (e.value.message, e.value.file) == ("the tokenizer has no EOS token", no_eos)


def test_a_dir_without_a_tokenizer_is_one_error_naming_it(tmp_path: Path):
    (tmp_path / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PrefdataError, match="cannot load a tokenizer") as e:
        models.load_tokenizer(None, str(tmp_path))
    assert e.value.file == str(tmp_path)


def test_a_preset_config_is_sized_to_the_tokenizer(tokenizer, tmp_path: Path):
    config = models.model_config("tiny-gpt2", tokenizer)
    assert (config.model_type, config.n_layer, config.n_head, config.n_embd) == ("gpt2", 2, 2, 64)
    assert (config.vocab_size, config.eos_token_id, config.pad_token_id, config.bos_token_id) == (10, 1, 0, 1)
    assert models.PRESETS["tiny-gpt2"]["model_type"] == "gpt2"  # the preset itself is not consumed
    with_bos = models.load_tokenizer(None, str(save_tokenizer(tmp_path, eos_token="</s>", bos_token="<s>")))
    assert models.model_config("tiny-llama", with_bos).bos_token_id == 3


def test_a_config_file_needs_a_model_type_and_must_parse(tokenizer, tmp_path: Path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2}), encoding="utf-8")
    config = models.model_config(f"config:{good}", tokenizer)
    assert (config.model_type, config.n_layer, config.n_embd, config.vocab_size) == ("gpt2", 1, 8, 10)
    typeless = tmp_path / "typeless.json"
    typeless.write_text("{}", encoding="utf-8")
    with pytest.raises(PrefdataError) as e:
        models.model_config(f"config:{typeless}", tokenizer)
    assert str(e.value) == 'model: a model config needs a "model_type" (e.g. gpt2, llama)'
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(PrefdataError, match="unreadable model config") as e:
        models.model_config(f"config:{broken}", tokenizer)
    assert e.value.file == str(broken)
    with pytest.raises(PrefdataError) as e:
        models.model_config("tiny-bert", tokenizer)
    assert str(e.value) == "model: 'tiny-bert' is neither a model dir, a preset (tiny-gpt2, tiny-llama) nor config:FILE.json"


def test_a_causal_lm_from_a_preset_takes_the_tokenizers_vocabulary_and_pad(tokenizer):
    model = models.load_causal_lm("tiny-gpt2", tokenizer)
    assert type(model) is transformers.GPT2LMHeadModel
    assert model.get_input_embeddings().num_embeddings == 10 and model.config.pad_token_id == 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    """A reward checkpoint (with its score head), an SFT checkpoint (none) and one whose embeddings are too small."""
    root = tmp_path_factory.mktemp("ckpt")
    small = dict(n_layer=1, n_head=2, n_embd=8, n_positions=16)
    torch.manual_seed(0)
    reward = transformers.GPT2Config(**small, vocab_size=10, num_labels=1)
    transformers.GPT2ForSequenceClassification(reward).save_pretrained(root / "reward")
    # an SFT checkpoint's config has the default num_labels (2): a value model must ask for one output itself
    transformers.GPT2LMHeadModel(transformers.GPT2Config(**small, vocab_size=10)).save_pretrained(root / "sft")
    transformers.GPT2LMHeadModel(transformers.GPT2Config(**small, vocab_size=6)).save_pretrained(root / "tiny")
    return root


def test_a_reward_model_needs_a_trained_head_in_a_directory(tokenizer, checkpoints: Path):
    reward = models.load_reward_model(str(checkpoints / "reward"), tokenizer)
    assert type(reward).__name__ == "_ValueModel" and reward.model.config.num_labels == 1
    assert reward.model.config.pad_token_id == 0
    with pytest.raises(PrefdataError) as e:
        models.load_reward_model(str(checkpoints / "sft"), tokenizer)
    assert e.value.file == str(checkpoints / "sft")
    assert e.value.message == ("has no trained reward head (score.weight not in the checkpoint: an SFT checkpoint?); "
                               "give a `prefdata train reward` output")
    with pytest.raises(PrefdataError) as e:
        models.load_reward_model("tiny-gpt2", tokenizer)
    assert str(e.value) == ("reward_model: 'tiny-gpt2' is not a directory: a reward model is a `prefdata train "
                            "reward` checkpoint")


def test_a_value_model_may_start_from_an_sft_checkpoint_or_a_preset(tokenizer, checkpoints: Path):
    critic = models.load_value_model(str(checkpoints / "sft"), tokenizer)
    assert critic.model.score.out_features == 1 and critic.model.config.num_labels == 1
    fresh = models.load_value_model("tiny-gpt2", tokenizer)
    assert fresh.model.config.num_labels == 1 and fresh.model.score.out_features == 1


def test_embeddings_smaller_than_the_vocabulary_are_resized(tokenizer, checkpoints: Path):
    assert models.load_causal_lm(str(checkpoints / "tiny"), tokenizer).get_input_embeddings().num_embeddings == 10
    assert models.load_causal_lm(str(checkpoints / "sft"), tokenizer).get_input_embeddings().num_embeddings == 10


def test_an_unloadable_checkpoint_is_one_error_naming_it(tokenizer, tmp_path: Path):
    (tmp_path / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(PrefdataError, match="cannot load the model") as e:
        models.load_causal_lm(str(tmp_path), tokenizer)
    assert e.value.file == str(tmp_path)


def test_value_model_scores_every_prefix_with_the_score_head(tokenizer, checkpoints: Path):
    inner = transformers.GPT2ForSequenceClassification.from_pretrained(checkpoints / "reward").eval()
    ids = torch.tensor([[4, 5, 6, 7]])
    values = models.ValueModel(inner)(ids, attention_mask=torch.ones_like(ids))
    assert values.shape == (1, 4) and values.dtype == torch.float32
    with torch.no_grad():
        for t in range(1, 5):  # causal: the value at t is the classifier's score of the prefix :t+1
            prefix = inner(input_ids=ids[:, :t]).logits[0, 0]
            assert values[0, t - 1].item() == pytest.approx(prefix.item(), abs=1e-5)
    with pytest.raises(PrefdataError, match="GPT2LMHeadModel has no `score` head"):
        models.ValueModel(transformers.GPT2LMHeadModel(inner.config))


def test_padding_and_packing_are_honoured(checkpoints: Path):
    """A left-padded row (mask and position ids given) and the second of two packed rows (restarting position ids, no
    mask: no KV cache, or transformers would not see the packing) score as the row alone."""
    value = models.ValueModel(transformers.GPT2ForSequenceClassification.from_pretrained(checkpoints / "reward").eval())
    with torch.no_grad():
        alone = value(torch.tensor([[6, 7, 8]]))[0]
        padded = value(torch.tensor([[0, 6, 7, 8]]), attention_mask=torch.tensor([[0, 1, 1, 1]]),
                       position_ids=torch.tensor([[0, 0, 1, 2]]))[0, 1:]
        packed = value(torch.tensor([[4, 5, 6, 7, 8]]), position_ids=torch.tensor([[0, 1, 0, 1, 2]]))[0, 2:]
    assert torch.allclose(padded, alone, atol=1e-6)
    assert torch.allclose(packed, alone, atol=1e-6)


def test_masked_positions_do_not_change_the_values(checkpoints: Path):
    value = models.ValueModel(transformers.GPT2ForSequenceClassification.from_pretrained(checkpoints / "reward").eval())
    mask = torch.tensor([[0, 0, 1, 1]])
    with torch.no_grad():
        pad_0 = value(torch.tensor([[0, 0, 6, 7]]), attention_mask=mask)[0, 2:]
        pad_9 = value(torch.tensor([[9, 5, 6, 7]]), attention_mask=mask)[0, 2:]
    assert torch.allclose(pad_0, pad_9, atol=1e-6)


def test_last_token_scores_for_right_left_and_both_sides_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 0]])
    assert models.last_token_scores(values, mask).tolist() == [2.0, 8.0, 11.0]


def test_disable_dropout_zeroes_every_dropout():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.3), torch.nn.Sequential(torch.nn.Dropout(0.1)))
    models.disable_dropout(model)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.0, 0.0]
