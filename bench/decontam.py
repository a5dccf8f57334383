"""Benchmark: what `split --exclude` costs and catches, exact prompt match against 13-gram overlap, on the HH file.

Input: the real HH-RLHF harmless-base test rows, replicated to ``--rows`` as `bench/split.py` builds them (a variant
marker appended to the last user turn). Benchmark: a JSONL of ``--eval`` HH prompts (the full conversation before the
reply) with one word inserted at a seeded place, i.e. near copies that an exact match cannot see; the training rows
built from those prompts are the contaminated ones. Every split runs in this process, one after the other, best of
``--repeat``; the split without ``--exclude`` is the reference.

    python bench/decontam.py                  # 100,000 rows, 96 eval prompts
    python bench/decontam.py --rows 2312      # the HH file itself
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from split import HH, build_input  # noqa: E402  (bench/split.py builds the replicated HH input)


def write_benchmark(path: Path, count: int, seed: int = 3) -> set[str]:
    """``count`` HH prompts with one word added, as JSONL; returns their original prompt texts."""
    from prefdata.jobs.importer import ParsedRow, iter_parsed

    prompts = list(dict.fromkeys("\n".join(m["content"] for m in item.row["prompt"])
                                 for item in iter_parsed(HH, "trl-implicit") if isinstance(item, ParsedRow)))
    rng = random.Random(seed)
    chosen = rng.sample(prompts, count)
    with path.open("w") as f:
        for number, text in enumerate(chosen):
            words = text.split(" ")
            words.insert(rng.randrange(len(words) + 1), "please")
            f.write(json.dumps({"id": f"eval-{number}", "prompt": " ".join(words)}) + "\n")
    return set(chosen)


def timed_split(input_dir: Path, out: Path, repeat: int, **options) -> tuple[float, dict]:
    from prefdata.jobs.split import split_datasets

    best, manifest = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        manifest = split_datasets([input_dir], out, overwrite=True, quiet=True, **options)
        best = min(best, time.perf_counter() - start)
    return best, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--eval", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prefdata-bench-decontam"))
    args = parser.parse_args()
    input_dir = args.workdir / f"input-{args.rows}"
    if not (input_dir / "prefdata.json").exists():
        build_input(input_dir, args.rows)
    benchmark = args.workdir / "eval.jsonl"
    originals = write_benchmark(benchmark, args.eval)

    from prefdata.pipeline.dedup import prompt_texts
    from prefdata.storage.dataset import load_tables

    table = load_tables(input_dir)["train"]
    texts = prompt_texts(table.column("prompt")).to_pylist()
    # the rows built from an eval prompt: their prompt is that prompt plus the variant marker `bench/split.py` adds
    contaminated = sum(1 for text in texts if text.rsplit(" (variant", 1)[0] in originals)
    runs = [("split, no --exclude", {}), ("--exclude eval.jsonl --exclude-ngram 0 (exact only)",
                                          {"exclude": [benchmark], "exclude_ngram": 0}),
            ("--exclude eval.jsonl (13-grams, default)", {"exclude": [benchmark]})]
    print(f"\n{table.num_rows:,} input rows, {args.eval} eval prompts with one word added; {contaminated:,} rows are "
          f"built from them; best of {args.repeat}\n")
    print("| split | seconds | removed (contaminated) | rows built from an eval prompt caught | extra seconds |")
    print("|---|---:|---:|---:|---:|")
    reference = None
    for label, options in runs:
        seconds, manifest = timed_split(input_dir, args.workdir / "out", args.repeat, **options)
        reference = seconds if reference is None else reference
        removed = manifest["dedup"]["contaminated"]
        print(f"| {label} | {seconds:.2f} | {removed:,} | {removed / max(contaminated, 1):.1%} "
              f"| {seconds - reference:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
