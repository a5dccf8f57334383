"""A byte-level BPE tokenizer trained on a split directory's own text, for runs without downloaded weights.

    python -m trainers.recipes.tokenizer --data SPLIT_DIR --out TOKENIZER_DIR [--vocab-size 8000]
    prefdata train tokenizer …

With ``--model tiny-gpt2`` (or another config) there is no pretrained tokenizer to go with the model; this one is
trained on the rendered prompt + replies of every split, has ``<|endoftext|>`` as EOS, ``<pad>`` as padding, and saves
as a `PreTrainedTokenizerFast` that ``--tokenizer`` (and `AutoTokenizer.from_pretrained`) loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.render import TEMPLATES, render
from prefdata.storage.dataset import iter_rows, read_manifest
from trainers.runtime.options import TOKENIZE_DEFAULTS, config_from_options, options_from, run_main, setting

EOS, PAD, UNK = "<|endoftext|>", "<pad>", "<unk>"


@dataclass
class TokenizerConfig:
    """`train tokenizer`: no DeepSpeed, so not a `RunConfig`."""

    data: str = setting(help="A prefdata dataset directory.", click_type=click.Path(exists=True, file_okay=False))
    out: str = setting(help="Where the tokenizer is saved.", click_type=click.Path(file_okay=False))
    vocab_size: int = setting(8000, "Tokens in the vocabulary, specials included.", click_type=click.IntRange(min=300))
    template: str = setting(TOKENIZE_DEFAULTS["template"], "How prompts are rendered for training (use the one you train with).",
                            choices=tuple(t for t in TEMPLATES if t != "tokenizer"))
    quiet: bool = setting(False, "No progress bar (the summary line stays).", short="-q")


def _texts(data_dir: str, template: str) -> Iterator[str]:
    for _, row in iter_rows(data_dir):
        yield render(row["prompt"], row["chosen"], template) if row.get("chosen") else render(row["prompt"], None, template)
        if row.get("rejected"):
            yield row["rejected"]


def train_tokenizer(cfg: TokenizerConfig) -> dict[str, Any]:
    """Train, save to ``cfg.out`` and return ``{"out", "vocab_size", "eos_token"}``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    read_manifest(cfg.data)  # a clear error for a directory that is not a prefdata dataset
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=not cfg.quiet,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_texts(cfg.data, cfg.template), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(cfg.out)
    return {"data": str(cfg.data), "out": str(cfg.out), "vocab_size": len(fast), "eos_token": EOS}


@click.command("tokenizer")
@options_from(TokenizerConfig, launcher=False)
def tokenizer_command(**options: Any) -> dict[str, Any]:
    """Train a byte-level BPE tokenizer on a dataset directory (for --model tiny-gpt2 / config runs offline)."""
    result = train_tokenizer(config_from_options(TokenizerConfig, options))
    click.echo(f"tokenizer: {result['vocab_size']:,} tokens trained on {result['data']} -> {result['out']}")
    return result


if __name__ == "__main__":
    run_main(tokenizer_command)
