"""`trainers.components.models`: what ``--model`` accepts, models sized to the tokenizer, the value model's scores at
each row's last real token. The token cache has its own file (`test_tokenize_cache.py`), the RL math too
(`test_rl_math.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the trainers need the train extra")
pytest.importorskip("transformers", reason="the trainers need the train extra")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components import models  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    helpers.train_tokenizer(path)
    return path


def test_model_spec_is_a_dir_a_preset_or_a_config_file(tmp_path):
    config = tmp_path / "model.json"
    config.write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_head": 1, "n_embd": 8}))
    for spec in (str(tmp_path), "tiny-gpt2", "tiny-llama", f"config:{config}"):
        models.check_model_spec(spec)
    with pytest.raises(PrefdataError, match="neither a model dir") as info:
        models.check_model_spec("config:/no/such.json", option="reward_model")
    assert "reward_model" in str(info.value)


def test_model_config_is_sized_to_the_tokenizer(tok_dir, tmp_path):
    tokenizer = models.load_tokenizer(str(tok_dir), "tiny-gpt2")
    config = models.model_config("tiny-gpt2", tokenizer)
    assert config.model_type == "gpt2" and config.n_layer == models.PRESETS["tiny-gpt2"]["n_layer"]
    assert config.vocab_size == len(tokenizer) and config.eos_token_id == tokenizer.eos_token_id
    no_type = tmp_path / "no-type.json"
    no_type.write_text(json.dumps({"n_layer": 1}))
    with pytest.raises(PrefdataError, match="model_type"):
        models.model_config(f"config:{no_type}", tokenizer)


def test_a_preset_needs_a_tokenizer_dir(tok_dir):
    with pytest.raises(PrefdataError, match="--tokenizer"):
        models.load_tokenizer(None, "tiny-gpt2")
    assert models.load_tokenizer(str(tok_dir), "tiny-gpt2").pad_token_id is not None


def test_value_model_scores_every_prefix_and_the_reward_is_at_the_last_real_token(tok_dir):
    tokenizer = models.load_tokenizer(str(tok_dir), "tiny-gpt2")
    torch.manual_seed(0)
    value_model = models.load_value_model("tiny-gpt2", tokenizer).eval()
    ids = torch.tensor([[5, 6, 7, 0], [0, 5, 6, 7]])  # right-padded, left-padded
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])
    values = value_model(ids, mask)
    assert values.shape == (2, 4) and values.dtype == torch.float32
    scores = models.last_token_scores(values, mask)
    assert scores.tolist() == [values[0, 2].item(), values[1, 3].item()]


def test_last_token_scores_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 0]])  # right, left, both-sides padding
    assert models.last_token_scores(values, mask).tolist() == [2.0, 8.0, 11.0]


def test_disable_dropout_zeroes_every_dropout(tok_dir):
    tokenizer = models.load_tokenizer(str(tok_dir), "tiny-gpt2")
    model = models.load_causal_lm("tiny-gpt2", tokenizer)
    assert any(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    models.disable_dropout(model)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
