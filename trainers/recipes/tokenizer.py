"""A byte-level BPE tokenizer trained on a split directory's own text, for runs without downloaded weights.

    python -m trainers.recipes.tokenizer --data SPLIT_DIR --out TOKENIZER_DIR [--vocab-size 8000]
    prefdata train tokenizer …

With ``--model tiny-gpt2`` (or another config) there is no pretrained tokenizer to go with the model; this one is
trained on the rendered prompt + replies of every split, has ``<|endoftext|>`` as EOS, ``<pad>`` as padding, and saves
as a `PreTrainedTokenizerFast` that ``--tokenizer`` (and `AutoTokenizer.from_pretrained`) loads. It carries the chat
template of ``--template``, so TRL, vLLM and ``transformers serve`` render chats exactly as prefdata does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import TEMPLATES, render
from prefdata.storage.dataset import iter_rows, verify_directory
from trainers.components.chat_template import chat_template_for
from trainers.runtime.options import TOKENIZE_DEFAULTS, config_from_options, options_from, run_main, setting
from trainers.runtime.output import trainer_output

EOS, PAD, UNK = "<|endoftext|>", "<pad>", "<unk>"
# What `save_pretrained` of a tokenizer writes: an --out holding anything else (a model's config.json and weights) is
# not replaced by a tokenizer.
TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                             "merges.txt", "added_tokens.json", "chat_template.jinja", "tokenizer.model"})


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
    """The rendered prompt (+ chosen text), the rejected text, and every message of a multi-message continuation
    (prefdata.preference/2: tool calls and tool results too), so no reply's words are missing from the vocabulary."""
    for _, row in iter_rows(data_dir):
        yield render(row["prompt"], row["chosen"], template) if row.get("chosen") else render(row["prompt"], None, template)
        if row.get("rejected"):
            yield row["rejected"]
        for side in ("chosen_turns", "rejected_turns"):
            for message in row.get(side) or ():
                yield from (message[key] for key in ("content", "tool_calls") if message.get(key))


def train_tokenizer(cfg: TokenizerConfig) -> dict[str, Any]:
    """Train, save to ``cfg.out`` and return ``{"data", "out", "vocab_size", "eos_token", "template"}``."""
    from transformers import PreTrainedTokenizerFast

    verify_directory(cfg.data)  # a clear error for a directory that is not a prefdata dataset, or a damaged one
    with trainer_output(cfg, replaceable=_tokenizer_only) as work:
        tokenizer = _train_bpe(cfg)
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK)
        fast.chat_template = chat_template_for(cfg.template)
        fast.save_pretrained(work)
    return {"data": str(cfg.data), "out": str(cfg.out), "vocab_size": len(fast), "eos_token": EOS,
            "template": cfg.template}


def _tokenizer_only(out: Path) -> None:
    """Refuse an existing ``--out`` that holds more than a tokenizer: a model directory keeps its own tokenizer."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PrefdataError("exists and is not a directory", file=str(out))
    others = sorted(p.name for p in out.iterdir() if p.name not in TOKENIZER_FILES)
    if others:
        raise PrefdataError(f"holds more than a tokenizer ({', '.join(others[:3])}); refusing to replace it: choose "
                            "an empty or new --out", file=str(out))


def _train_bpe(cfg: TokenizerConfig) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=not cfg.quiet,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_texts(cfg.data, cfg.template), trainer)
    return tokenizer


@click.command("tokenizer")
@options_from(TokenizerConfig, launcher=False)
def tokenizer_command(**options: Any) -> dict[str, Any]:
    """Train a byte-level BPE tokenizer on a dataset directory (for --model tiny-gpt2 / config runs offline)."""
    result = train_tokenizer(config_from_options(TokenizerConfig, options))
    click.echo(f"tokenizer: {result['vocab_size']:,} tokens trained on {result['data']} -> {result['out']}")
    return result


if __name__ == "__main__":
    run_main(tokenizer_command)
