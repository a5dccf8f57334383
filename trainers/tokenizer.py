"""A byte-level BPE tokenizer trained on a split directory's own text, for runs without downloaded weights.

    python -m trainers.tokenizer --data SPLIT_DIR --out TOKENIZER_DIR [--vocab-size 8000]
    prefdata train tokenizer …

With ``--model tiny-gpt2`` (or another config) there is no pretrained tokenizer to go with the model; this one is
trained on the rendered prompt + replies of every split, has ``<|endoftext|>`` as EOS, ``<pad>`` as padding, and saves
as a `PreTrainedTokenizerFast` that ``--tokenizer`` (and `AutoTokenizer.from_pretrained`) loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from prefdata.contract.render import TEMPLATES, render
from prefdata.pipeline.progress import info
from prefdata.storage.dataset import iter_rows, read_manifest

EOS, PAD, UNK = "<|endoftext|>", "<pad>", "<unk>"


def _texts(data_dir: str, template: str) -> Iterator[str]:
    for _, row in iter_rows(data_dir):
        yield render(row["prompt"], row["chosen"], template) if row.get("chosen") else render(row["prompt"], None, template)
        if row.get("rejected"):
            yield row["rejected"]


def train_tokenizer(data: str, out: str, *, vocab_size: int = 8000, template: str = "dschat", quiet: bool = False
                    ) -> dict[str, Any]:
    """Train, save to ``out`` and return ``{"out", "vocab_size", "eos_token"}``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    read_manifest(data)  # a clear error for a directory that is not a prefdata dataset
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=not quiet,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_texts(data, template), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK)
    Path(out).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    info(f"tokenizer: {len(fast):,} tokens trained on {data} -> {out}", quiet)
    return {"out": str(out), "vocab_size": len(fast), "eos_token": EOS}


@click.command("tokenizer")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="A prefdata dataset directory.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where the tokenizer is saved.")
@click.option("--vocab-size", type=click.IntRange(min=300), default=8000, show_default=True)
@click.option("--template", type=click.Choice([t for t in TEMPLATES if t != "tokenizer"]), default="dschat",
              show_default=True, help="How prompts are rendered for training (use the one you train with).")
@click.option("--quiet", "-q", is_flag=True)
def tokenizer_command(data: str, out: str, vocab_size: int, template: str, quiet: bool) -> None:
    """Train a byte-level BPE tokenizer on a dataset directory (for --model tiny-gpt2 / config runs offline)."""
    train_tokenizer(data, out, vocab_size=vocab_size, template=template, quiet=quiet)


if __name__ == "__main__":
    from trainers.common import run_main

    run_main(tokenizer_command)
