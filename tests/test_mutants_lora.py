"""Tests that kill mutants of `trainers/components/lora.py` (issue #15): the settings' checks, which layers are
targets, the adapter config put on a causal LM and on a value model, the adapter switched off for the reference
model, and merging, on one-layer GPT-2 models built from a config here (no weights, no download).
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.components.lora import (  # noqa: E402
    ALL_LINEAR,
    AdapterDisabled,
    LoraSettings,
    is_lora,
    linear_module_names,
    merged_model,
    target_modules,
    with_lora,
)
from trainers.components.models import ValueModel  # noqa: E402

IDS = torch.tensor([[1, 5, 7, 2]])


def cfg(rank: int = 0, alpha: float = 16.0, merge: bool = False, targets: str = ALL_LINEAR) -> SimpleNamespace:
    return SimpleNamespace(lora_rank=rank, lora_alpha=alpha, lora_merge=merge, lora_targets=targets)


def gpt2_config() -> transformers.GPT2Config:
    return transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=20, num_labels=1,
                                   pad_token_id=0)


def causal_lm():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(gpt2_config()).eval()  # no dropout: outputs compared exactly


def value_model():
    torch.manual_seed(0)
    return ValueModel(transformers.GPT2ForSequenceClassification(gpt2_config()).eval())


def test_settings_of_a_run_config():
    assert LoraSettings.of(cfg(rank=0)) is None
    assert LoraSettings.of(cfg(rank=4, alpha=8.0, targets="c_attn")) == LoraSettings(4, 8.0, "c_attn")
    assert LoraSettings.of(cfg(rank=1, alpha=0.5)) == LoraSettings(1, 0.5)  # alpha below 1 is fine: it is positive
    assert LoraSettings(2, 1.0).targets == ALL_LINEAR == "all-linear"


@pytest.mark.parametrize(("config", "field", "message"), [
    (cfg(rank=0, merge=True), "lora_merge",
     "--lora-merge needs --lora-rank (without LoRA there is no adapter to merge)"),
    (cfg(rank=-1), "lora_rank", "--lora-rank and --lora-alpha must be positive"),
    (cfg(rank=4, alpha=0.0), "lora_rank", "--lora-rank and --lora-alpha must be positive"),
    (cfg(rank=4, alpha=-1.0), "lora_rank", "--lora-rank and --lora-alpha must be positive"),
])
def test_settings_refuse_what_cannot_work(config, field, message):
    with pytest.raises(PrefdataError) as e:
        LoraSettings.of(config)
    assert (e.value.field, e.value.message) == (field, message)


def test_linear_layers_are_linear_and_conv1d_short_names_without_output_heads():
    from transformers.pytorch_utils import Conv1D

    model = torch.nn.ModuleDict({
        "block": torch.nn.ModuleList([torch.nn.ModuleDict({"q_proj": torch.nn.Linear(2, 2), "c_attn": Conv1D(2, 2),
                                                           "norm": torch.nn.LayerNorm(2)})]),
        "up": torch.nn.Linear(2, 2), "lm_head": torch.nn.Linear(2, 2), "score": torch.nn.Linear(2, 1),
    })
    assert linear_module_names(model) == ["c_attn", "q_proj", "up"]
    assert linear_module_names(causal_lm()) == ["c_attn", "c_fc", "c_proj"]


def test_targets_all_linear_or_a_checked_list():
    model = causal_lm()
    assert target_modules(model, " all-linear ") == ["c_attn", "c_fc", "c_proj"]
    assert target_modules(model, " c_proj , c_attn ,") == ["c_proj", "c_attn"]


@pytest.mark.parametrize(("targets", "named"), [
    ("c_attn,q_proj", "q_proj"), ("k_proj,c_fc,q_proj", "k_proj, q_proj"), (" , ", "nothing"), ("", "nothing")])
def test_targets_that_are_no_linear_layer_are_refused(targets, named):
    with pytest.raises(PrefdataError) as e:
        target_modules(causal_lm(), targets)
    assert str(e.value) == (f"lora_targets: --lora-targets {targets!r}: {named} is not a linear layer of the model "
                            "(it has: c_attn, c_fc, c_proj)")


def test_off_leaves_the_model_as_it_is():
    model = causal_lm()
    assert with_lora(model, None) is model and not is_lora(model)


def test_a_causal_lm_gets_adapters_on_its_targets_only():
    lora = with_lora(causal_lm(), LoraSettings(2, 4.0, "c_attn"))
    config = lora.peft_config["default"]
    assert is_lora(lora) and type(lora).__name__ == "PeftModelForCausalLM"
    assert (config.r, config.lora_alpha, config.lora_dropout) == (2, 4.0, 0.0)
    assert set(config.target_modules) == {"c_attn"}
    assert config.modules_to_save is None
    trainable = sorted(name for name, p in lora.named_parameters() if p.requires_grad)
    assert trainable and all(".c_attn.lora_" in name for name in trainable)


def test_a_value_model_keeps_training_its_score_head():
    lora = with_lora(value_model(), LoraSettings(2, 4.0))
    config = lora.peft_config["default"]
    assert config.task_type is None and list(config.modules_to_save) == ["score"]
    assert set(config.target_modules) == {"c_attn", "c_fc", "c_proj"}
    trainable = {name for name, p in lora.named_parameters() if p.requires_grad}
    assert any(".score." in name for name in trainable)


def test_adapter_disabled_calls_the_engine_inside_the_modules_disable_adapter():
    calls = []

    class Module:
        @contextmanager
        def disable_adapter(self):
            calls.append("off")
            yield
            calls.append("on")

    def engine(*args, **kwargs):
        calls.append(("call", args, kwargs))
        return "out"

    engine.module = Module()
    assert AdapterDisabled(engine)(1, x=2) == "out"
    assert calls == ["off", ("call", (1,), {"x": 2}), "on"]
    bare = Module()
    assert AdapterDisabled(bare).peft_model is bare


def perturbed(lora):
    """The adapter made non-zero (lora_B starts at zero, which would make merging a no-op)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p))
    return lora


def test_merging_a_causal_lm_gives_a_plain_model_with_the_adapted_outputs():
    lora = perturbed(with_lora(causal_lm(), LoraSettings(2, 4.0)))
    with torch.no_grad():
        adapted = lora(input_ids=IDS).logits
        with lora.disable_adapter():
            base = lora(input_ids=IDS).logits
    merged = merged_model(lora, lora.state_dict())
    assert type(merged) is transformers.GPT2LMHeadModel and not merged.training
    with torch.no_grad():
        out = merged(input_ids=IDS).logits
    assert not torch.allclose(adapted, base)
    assert torch.allclose(out, adapted, atol=1e-5)


def test_merging_a_value_model_gives_the_sequence_classifier_with_its_trained_head():
    lora = perturbed(with_lora(value_model(), LoraSettings(2, 4.0)))
    with torch.no_grad():
        lora.base_model.model.model.score.modules_to_save["default"].weight.add_(1.0)
        adapted = lora(input_ids=IDS)
    merged = merged_model(lora, lora.state_dict())
    assert type(merged) is transformers.GPT2ForSequenceClassification
    with torch.no_grad():
        out = ValueModel(merged)(input_ids=IDS)
    assert torch.allclose(out, adapted, atol=1e-5)
