"""Padding-free packing vs padded batches on CPU, on the HH-RLHF length distribution, measured in the same run.

The rows are the real HH harmless-base test file parsed as `prefdata import` parses it (each once), tokenised by the
token cache with a byte-level BPE trained here on those rows (no downloads), as `bench/tokenize_cache.py` does. The same
random micro-batches are trained padded (`collate_sft` / `collate_pairs`) and packed (`trainers.components.packing`),
alternating which layout goes first, on one llama-style model: forward, backward and an AdamW step per micro-batch, the
first ``--warmup`` micro-batches not timed. Tokens/s counts real (non-pad) tokens; "pad share" is the part of the batch
tensor that is padding.

    python bench/packing.py [--batches 24] [--micro-batch-size 8] [--max-seq-len 1024] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenize_cache import REPO, hh_rows, prepare  # noqa: E402

sys.path.insert(0, str(REPO))
# A small llama (about 6M parameters with the 8k vocabulary): big enough that matrix work, not Python, sets the pace.
MODEL = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 688,
         "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 4096}


def micro_batches(dataset: Any, size: int, count: int, seed: int) -> list[list[dict]]:
    """``count`` random micro-batches of ``size`` rows, the same for both layouts."""
    order = random.Random(seed).sample(range(len(dataset)), min(len(dataset), size * count))
    return [[dataset[i] for i in order[k : k + size]] for k in range(0, len(order), size)]


def sft_step(model: Any, batch: dict[str, Any]) -> Any:
    from trainers.components.packing import model_inputs

    return model(**model_inputs(batch)).loss


def reward_step(model: Any, batch: dict[str, Any]) -> Any:
    from trainers.components.packing import last_token_values
    from trainers.components.rl import pairwise_loss

    values = model(batch["input_ids"], batch.get("attention_mask"), batch.get("position_ids"))
    return pairwise_loss(*last_token_values(values, batch).chunk(2), 0.0)


def measure(phase: str, model: Any, step: Any, collates: dict[str, Any], batches: list[list[dict]],
            warmup: int) -> dict[str, dict[str, float]]:
    """Train every micro-batch in both layouts (alternating the first) and add up time, real tokens and batch area."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    totals = {layout: {"seconds": 0.0, "tokens": 0, "area": 0} for layout in collates}
    for k, examples in enumerate(batches):
        layouts = list(collates) if k % 2 == 0 else list(collates)[::-1]
        for layout in layouts:
            batch = collates[layout](examples)
            started = time.perf_counter()
            step(model, batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - started
            if k < warmup:
                continue
            ids = batch["input_ids"]
            real = int((batch["sequence_index"] >= 0).sum()) if "sequence_index" in batch else int(batch["attention_mask"].sum())
            totals[layout]["seconds"] += seconds
            totals[layout]["tokens"] += real
            totals[layout]["area"] += ids.numel()
    print(f"{phase}: {len(batches) - warmup} timed micro-batches per layout", file=sys.stderr)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "_work" / "packing")
    args = parser.parse_args()

    import torch

    from trainers.components import models
    from trainers.components.collate import collate_pairs, collate_sft
    from trainers.components.packing import collate_packed_pairs, collate_packed_sft
    from trainers.components.tokens import TokenizeSpec, tokenized

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.workdir / "split").is_dir():
        prepare(args.workdir, len(hh_rows()), 0, args.vocab)
    tokenizer = models.load_tokenizer(str(args.workdir / "tok"), "tiny-llama")
    config = args.workdir / "model.json"
    config.write_text(json.dumps(MODEL))
    pad = tokenizer.pad_token_id
    phases = {
        "sft": ("sft_train", models.load_causal_lm, sft_step,
                {"padded": functools.partial(collate_sft, pad_id=pad),
                 "packed": functools.partial(collate_packed_sft, pad_id=pad)}),
        "reward": ("rm_train", models.load_value_model, reward_step,
                   {"padded": functools.partial(collate_pairs, pad_id=pad),
                    "packed": functools.partial(collate_packed_pairs, pad_id=pad)}),
    }
    print("| phase | layout | real tokens | batch tokens | pad share | seconds | tokens/s | packed / padded |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for phase, (split, load, step, collates) in phases.items():
        spec = TokenizeSpec("sft" if phase == "sft" else "rm", max_seq_len=args.max_seq_len)
        dataset = tokenized(args.workdir / "split", split, tokenizer, spec, args.workdir / "cache", quiet=True)
        torch.manual_seed(args.seed)
        model = load(f"config:{config}", tokenizer).train()
        batches = micro_batches(dataset, args.micro_batch_size, args.batches + args.warmup, args.seed)
        totals = measure(phase, model, step, collates, batches, args.warmup)
        rate = {layout: t["tokens"] / t["seconds"] for layout, t in totals.items()}
        for layout, t in totals.items():
            pad_share = 1 - t["tokens"] / t["area"]
            ratio = f"{rate[layout] / rate['padded']:.2f}x" if layout == "packed" else ""
            print(f"| {phase} | {layout} | {t['tokens']:,} | {t['area']:,} | {pad_share:.1%} | {t['seconds']:.2f} | "
                  f"{rate[layout]:,.0f} | {ratio} |")
        pads = {layout: t["area"] - t["tokens"] for layout, t in totals.items()}
        print(f"{phase}: packing removed {1 - pads['packed'] / pads['padded']:.1%} of the pad tokens", file=sys.stderr)
    print(f"model: {MODEL}; micro-batch {args.micro_batch_size}, {args.batches} timed micro-batches per layout, "
          f"torch threads {torch.get_num_threads()}", file=sys.stderr)


if __name__ == "__main__":
    main()
