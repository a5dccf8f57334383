"""LoRA through `peft`: low-rank adapters on a model's linear layers, the base frozen, for every recipe.

A causal LM becomes a ``PeftModelForCausalLM`` (``generate`` and the loss work as before); a value model (reward model,
critic; `trainers.components.models.ValueModel`) is wrapped whole, with its score head trained in full
(``modules_to_save``), since a random head cannot be learnt through a rank-r update of nothing. The reference model of
DPO, KTO and PPO under LoRA is the same module with the adapter switched off (`AdapterDisabled`): no second copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from prefdata.contract.errors import PrefdataError

ALL_LINEAR = "all-linear"
HEADS = ("lm_head", "score")  # output layers: never adapted (the score head is trained in full instead)


@dataclass(frozen=True)
class LoraSettings:
    """``--lora-rank`` (0: off), ``--lora-alpha`` (the update is scaled by alpha / rank) and ``--lora-targets``."""

    rank: int
    alpha: float
    targets: str = ALL_LINEAR

    @classmethod
    def of(cls, cfg: Any) -> LoraSettings | None:
        """The settings of a run config, or None when LoRA is off."""
        if not cfg.lora_rank:
            if cfg.lora_merge:
                raise PrefdataError("--lora-merge needs --lora-rank (without LoRA there is no adapter to merge)",
                                    field="lora_merge")
            return None
        if cfg.lora_rank < 0 or cfg.lora_alpha <= 0:
            raise PrefdataError("--lora-rank and --lora-alpha must be positive", field="lora_rank")
        return cls(cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets)


def linear_module_names(model: Any) -> list[str]:
    """The short names of the model's linear layers (``nn.Linear`` and GPT-2's ``Conv1D``), output heads excluded."""
    import torch
    from transformers.pytorch_utils import Conv1D

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D))}
    return sorted(names - set(HEADS))


def target_modules(model: Any, targets: str) -> list[str]:
    """``--lora-targets``: ``all-linear`` or a comma-separated list of module names, each of which must exist."""
    available = linear_module_names(model)
    if targets.strip() == ALL_LINEAR:
        return available
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in available]
    if not wanted or unknown:
        raise PrefdataError(f"--lora-targets {targets!r}: {', '.join(unknown) or 'nothing'} is not a linear layer of "
                            f"the model (it has: {', '.join(available)})", field="lora_targets")
    return wanted


def with_lora(model: Any, settings: LoraSettings | None) -> Any:
    """``model`` with LoRA adapters (only they, and a value model's score head, train); ``model`` as it is if off."""
    if settings is None:
        return model
    from peft import LoraConfig, get_peft_model

    value_model = type(model).__name__ == "_ValueModel"
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=target_modules(model, settings.targets),
                        task_type=None if value_model else "CAUSAL_LM",
                        modules_to_save=["score"] if value_model else None)
    return get_peft_model(model, config)


def is_lora(module: Any) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


class AdapterDisabled:
    """Calls an engine (or module) holding a LoRA model with the adapter off: the frozen base as reference model."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.peft_model = getattr(engine, "module", engine)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.peft_model.disable_adapter():
            return self.engine(*args, **kwargs)


def merged_model(peft_model: Any, state: dict[str, Any]) -> Any:
    """The base with the adapter folded in, as a plain transformers model, from the full state dict of a LoRA model
    (rebuilt on the CPU from the state, so a module sharded by ZeRO-3 is never touched)."""
    from peft import get_peft_model

    base = peft_model.get_base_model()
    value_model = type(base).__name__ == "_ValueModel"
    inner = base.model if value_model else base
    fresh = type(inner)(copy.deepcopy(inner.config))
    if value_model:
        from trainers.components.models import ValueModel

        fresh = ValueModel(fresh)
    config = copy.deepcopy(peft_model.peft_config["default"])
    clone = get_peft_model(fresh, config)
    clone.load_state_dict(state)
    merged = clone.merge_and_unload().eval()
    return merged.model if value_model else merged
