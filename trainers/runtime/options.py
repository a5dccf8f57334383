"""Settings written once: each recipe's config is a dataclass whose fields carry their default and help, and the click
options of ``python -m trainers.recipes.<phase>`` and ``prefdata train <phase>`` are generated from it.

A default therefore lives in exactly one place (the field), and the Python API (``train_sft(SFTConfig(...))``) and the
command line cannot disagree.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

import click

from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import TEMPLATES
from trainers.components.tokens import TRUNCATION, TokenizeSpec

DTYPES = ("bf16", "fp32")
# What changes the tokens is defaulted once, in `TokenizeSpec`; the run configs take those defaults from there.
TOKENIZE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TokenizeSpec) if f.default is not MISSING}
Config = TypeVar("Config")


def setting(default: Any = MISSING, help: str = "", *, choices: tuple[str, ...] | None = None,
            click_type: Any = None, short: str | None = None) -> Any:
    """A config field with what its command-line option needs: help text, choices, a click type, a short alias.

    A field without a default is a required option; a ``bool`` field defaulting to False is a flag.
    """
    metadata = {"help": help, "choices": choices, "click_type": click_type, "short": short}
    return dataclasses.field(metadata=metadata) if default is MISSING else dataclasses.field(default=default,
                                                                                                metadata=metadata)


@dataclass
class RunConfig:
    """Options every phase has; a phase's config adds its own fields."""

    data: str = setting(help="`prefdata split` output.", click_type=click.Path(exists=True, file_okay=False))
    model: str = setting(help="HF model dir, a preset (tiny-gpt2, tiny-llama) or config:FILE.json.")
    out: str = setting(help="Checkpoint dir (HF layout).", click_type=click.Path(file_okay=False))
    tokenizer: str | None = setting(None, "Tokenizer dir; default: the model dir (required with a config).")
    template: str = setting(TOKENIZE_DEFAULTS["template"], "How prompts and replies are rendered.", choices=TEMPLATES)
    max_seq_len: int = setting(TOKENIZE_DEFAULTS["max_seq_len"], "Prompt + reply + EOS, in tokens.")
    truncate: str = setting(TOKENIZE_DEFAULTS["truncation"], "Over-long rows: drop them (counted) or cut tokens from the left or the right.",
                            choices=TRUNCATION)
    cache_dir: str | None = setting(None, "Token cache (default $PREFDATA_HOME/tokens, ~/.cache/prefdata/tokens).")
    deepspeed: str | None = setting(None, "DeepSpeed JSON config; default: trainers/configs/<phase>.json. Flags below "
                                    "override it.", click_type=click.Path(exists=True, dir_okay=False))
    zero_stage: int | None = setting(None, "ZeRO stage (0-3).", click_type=click.IntRange(0, 3))
    dtype: str = setting("bf16", "Training precision.", choices=DTYPES)
    micro_batch_size: int | None = setting(None, "Per-rank batch size.")
    grad_accum: int | None = setting(None, "Gradient accumulation steps.")
    lr: float | None = setting(None, "Learning rate; default: the DeepSpeed config's.")
    epochs: int = setting(1, "Passes over the training split.")
    max_steps: int | None = setting(None, "Stop after this many optimizer steps.")
    warmup_steps: int = setting(0, "Linear warm-up steps, then linear decay (0: constant rate).")
    seed: int = setting(1234, "Seed of sampling, shuffling and initialisation.")
    save_steps: int = setting(0, "DeepSpeed checkpoint every N steps (0: at the end only).")
    resume: bool = setting(False, "Continue from the latest checkpoint in OUT/checkpoints.")
    quiet: bool = setting(False, "No progress bars, JSON lines or library chatter (the log file and the summary line "
                          "stay).", short="-q")
    # LoRA (`trainers.components.lora`): adapters on the linear layers, the base frozen; 0 keeps full fine-tuning.
    lora_rank: int = setting(0, "LoRA rank (0: off, train every weight).")
    lora_alpha: float = setting(16.0, "LoRA scale: the update is multiplied by alpha / rank.")
    lora_targets: str = setting("all-linear", "Layers that get adapters: all-linear or names such as c_attn,q_proj.")
    lora_merge: bool = setting(False, "Under LoRA, also write the base with the adapter merged in as --out's model "
                               "(the adapter alone is always in OUT/adapter).")


@dataclass
class PackingOption:
    """``--packing`` for the phases that train on whole sequences (sft, reward, dpo). Listed before `RunConfig` in a
    phase config's bases (``class SFTConfig(PackingOption, RunConfig)``) since its field has a default."""

    packing: bool = setting(False, "Padding-free batches: the micro-batch's sequences share rows, positions restart "
                            "per sequence and attention stays inside each one (same losses, no pad tokens).")


def _option(field: dataclasses.Field, hint: Any) -> Callable[[Callable], Callable]:
    """The click option of one config field."""
    meta = field.metadata
    names = [f"--{field.name.replace('_', '-')}", *([meta["short"]] if meta.get("short") else []), field.name]
    if hint is bool:
        return click.option(*names, is_flag=True, help=meta["help"])
    if isinstance(hint, types.UnionType):  # `int | None`: the option's type is the non-None member
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind = meta["click_type"] or (click.Choice(meta["choices"]) if meta.get("choices") else hint)
    if field.default is MISSING:
        return click.option(*names, required=True, type=kind, help=meta["help"])
    return click.option(*names, type=kind, default=field.default, show_default=field.default is not None,
                        help=meta["help"])


def options_from(config_class: type, *, launcher: bool = True) -> Callable[[Callable], Callable]:
    """Decorate a click command with one option per field of ``config_class`` (and the launcher's ``--local_rank``)."""
    hints = typing.get_type_hints(config_class)

    def decorate(command: Callable) -> Callable:
        if launcher:  # `deepspeed` passes --local_rank=N to every rank
            command = click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None,
                                   hidden=True)(command)
        for field in reversed(fields(config_class)):
            command = _option(field, hints[field.name])(command)
        return command

    return decorate


def config_from_options(config_class: type[Config], options: dict[str, Any]) -> Config:
    """Build a phase config from click's keyword arguments (the launcher's ``--local_rank`` goes to the environment)."""
    local_rank = options.pop("local_rank", None)
    if local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if options.get("quiet"):
        quiet_libraries()
    return config_class(**options)


def quiet_libraries() -> None:
    """``--quiet`` means quiet: no transformers/datasets progress bars, no library deprecation chatter."""
    import warnings

    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_main(command: click.Command) -> None:
    """Entry point of ``python -m trainers.recipes.<phase>``: a user mistake is one line on stderr and exit 2."""
    try:
        command.main(standalone_mode=False)
    except PrefdataError as e:
        click.echo(f"prefdata: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
