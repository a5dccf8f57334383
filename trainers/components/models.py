"""Models from a directory or from a config (no weights needed), and the value model used as reward model and critic.

``--model`` accepts a Hugging Face model directory, a preset name (`PRESETS`: ``tiny-gpt2``, ``tiny-llama``) or
``config:FILE.json`` (a transformers config with a ``model_type``). Built from a config, the model is sized to the
tokenizer's vocabulary and randomly initialised from the run's seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError

# `--model tiny-gpt2` / `tiny-llama`: small architectures built from transformers config classes, no weights needed.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-gpt2": {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 1024},
    "tiny-llama": {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 176,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
    },
}


def load_tokenizer(name: str | None, model: str):
    """The tokenizer from ``--tokenizer`` or the model dir; it must have an EOS token (a pad token defaults to EOS)."""
    from transformers import AutoTokenizer

    check_model_spec(model)
    source = name or model
    if not Path(source).is_dir():
        raise PrefdataError(f"--model {model} is not a directory: give --tokenizer DIR", field="tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise PrefdataError(f"cannot load a tokenizer: {e}", file=source) from None
    if tokenizer.eos_token_id is None:
        raise PrefdataError("the tokenizer has no EOS token", file=source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_model_spec(spec: str, option: str = "model") -> None:
    """Fail before any work when ``--model`` (or another model option) names nothing loadable."""
    if Path(spec).is_dir() or spec in PRESETS:
        return
    if spec.startswith("config:") and Path(spec[len("config:") :]).is_file():
        return
    raise PrefdataError(f"{spec!r} is neither a model dir, a preset ({', '.join(PRESETS)}) nor config:FILE.json",
                        field=option)


def model_config(spec: str, tokenizer: Any):
    """A transformers config from a preset name or ``config:FILE.json``, sized to the tokenizer's vocabulary."""
    from transformers import AutoConfig

    if spec.startswith("config:"):
        path = Path(spec[len("config:") :])
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PrefdataError(f"unreadable model config: {e}", file=str(path)) from None
    elif spec in PRESETS:
        values = dict(PRESETS[spec])
    else:
        raise PrefdataError(f"{spec!r} is neither a model dir, a preset ({', '.join(PRESETS)}) nor config:FILE.json",
                            field="model")
    values = dict(values)
    model_type = values.pop("model_type", None)
    if model_type is None:
        raise PrefdataError("a model config needs a \"model_type\" (e.g. gpt2, llama)", field="model")
    values.update(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id)
    return AutoConfig.for_model(model_type, **values)


def _load(auto_class: Any, spec: str, tokenizer: Any, *, trained_head: bool = False, **kwargs):
    """A model from a directory or a config; ``trained_head``: the directory must hold the head's weights (a reward
    model's score head), not leave transformers to initialise it at random."""
    if trained_head and not Path(spec).is_dir():
        raise PrefdataError(f"{spec!r} is not a directory: a reward model is a `prefdata train reward` checkpoint",
                            field="reward_model")
    if Path(spec).is_dir():
        try:
            model, loading = auto_class.from_pretrained(spec, output_loading_info=True, **kwargs)
        except (OSError, ValueError) as e:
            raise PrefdataError(f"cannot load the model: {e}", file=spec) from None
        untrained = [name for name in loading["missing_keys"] if name.split(".")[0] == "score"]
        if trained_head and untrained:
            raise PrefdataError(f"has no trained reward head ({', '.join(sorted(untrained))} not in the checkpoint: an "
                                "SFT checkpoint?); give a `prefdata train reward` output", file=spec)
    else:
        config = model_config(spec, tokenizer)
        for key, value in kwargs.items():
            setattr(config, key, value)
        model = auto_class.from_config(config)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_causal_lm(spec: str, tokenizer: Any):
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, spec, tokenizer)


def load_value_model(spec: str, tokenizer: Any):
    """A sequence-classification model with one output, wrapped to give a value for every token (reward, critic)."""
    from transformers import AutoModelForSequenceClassification

    return ValueModel(_load(AutoModelForSequenceClassification, spec, tokenizer, num_labels=1))


def load_reward_model(spec: str, tokenizer: Any):
    """`load_value_model` for the reward: PPO against a score head initialised at random learns nothing, so a
    checkpoint without a trained head (an SFT model) is refused rather than warned about."""
    from transformers import AutoModelForSequenceClassification

    return ValueModel(_load(AutoModelForSequenceClassification, spec, tokenizer, trained_head=True, num_labels=1))


def _value_model_class():
    import torch

    class _ValueModel(torch.nn.Module):
        """Transformer + the classification head applied at every position: ``values[b, t]`` scores the prefix ``:t+1``.

        The reward of a sequence is its value at the last real token (`last_token_scores`); the head is the model's own
        ``score`` layer, so the checkpoint reloads with ``AutoModelForSequenceClassification.from_pretrained``.
        """

        def __init__(self, model: Any) -> None:
            super().__init__()
            if not hasattr(model, "score"):
                raise PrefdataError(f"{type(model).__name__} has no `score` head; use a decoder model (gpt2, llama, …)")
            self.model = model

        def forward(self, input_ids, attention_mask=None, position_ids=None):
            # No KV cache: scoring never needs one, and with one transformers ignores packed position ids.
            hidden = self.model.base_model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            return self.model.score(hidden).squeeze(-1).float()

    return _ValueModel


def ValueModel(model: Any):  # noqa: N802 - reads as a class at call sites; built lazily so torch loads only for training
    return _value_model_class()(model)


def last_token_scores(values: Any, attention_mask: Any) -> Any:
    """``values`` at each row's last attended position (works for left, right and both-sides padding)."""
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask * positions).argmax(dim=1)
    return values.gather(1, last.unsqueeze(1)).squeeze(1)


def disable_dropout(model: Any) -> None:
    """PPO's ratio must be exactly 1 on the first pass over an experience batch."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
