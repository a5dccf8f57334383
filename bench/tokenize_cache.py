"""Token cache vs. DeepSpeed-Chat's tokenisation, measured in the same run on real HH-RLHF rows.

Baseline (DeepSpeed-Chat `create_dataset_split`): one tokenizer call per example, padded to max length (512) as torch
tensors, the list `torch.save`d. Ours (`trainers.components.tokens.tokenized`): the fast batch path, unpadded int32 Arrow columns,
memory-mapped. Both get the same rows (HH harmless-base test, parsed with `split_pair`, replicated with unique ids) and
the same tokenizer (a byte-level BPE trained here on those rows; no downloads). Every measurement runs in a fresh
subprocess so peak RSS is its own.

    python bench/tokenize_cache.py [--rows 20000] [--open-rows 100000] [--repeat 3] [--workdir bench/_work/tokenize]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HH = Path(os.environ.get("PREFDATA_SHARED_DATA", REPO.parent / "shared" / "data")) / "hh-rlhf/harmless-base/test.jsonl.gz"
MAX_LEN = 512


def hh_rows() -> list[dict]:
    """The real HH records that make valid pairs, parsed as `prefdata import` parses them."""
    from prefdata.jobs.importer import ParsedRow, iter_parsed

    return [item.row for item in iter_parsed(HH, "trl-implicit", source="hh-rlhf/harmless-base")
            if isinstance(item, ParsedRow)]


def prepare(workdir: Path, n_rows: int, open_rows: int, vocab: int) -> None:
    """The split directory (HH rows replicated to n_rows / open_rows with unique ids) and a tokenizer trained on them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from prefdata.contract.render import render
    from prefdata.contract.row import short_hash
    from prefdata.storage.dataset import DatasetWriter

    rows = hh_rows()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [render(r["prompt"], r["chosen"]) for r in rows] + [r["rejected"] for r in rows]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<|endoftext|>", "<unk>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(workdir / "tok")
    with DatasetWriter(workdir / "split", command="bench-tokenize") as writer:
        for split, n in (("sft_train", n_rows), ("rm_train", n_rows), ("sft_big", open_rows)):
            for k in range(n):
                row = dict(rows[k % len(rows)])
                row["id"] = short_hash([row["id"], k])  # replicas get their own ids
                writer.count_in()
                writer.write(row, split)
    print(f"prepared {len(rows):,} HH rows -> {n_rows:,} per phase, {open_rows:,} for the open test", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- measured children


def warm_up(workdir: Path) -> None:
    """Import `datasets` and open the split directory before the clock starts, for both sides: the one-off import
    (about half a second) is not tokenisation throughput."""
    from prefdata.storage.dataset import load

    load(workdir / "split")


def baseline(workdir: Path, phase: str) -> dict:
    """DeepSpeed-Chat step1/step2 data preparation, as in its `create_dataset_split`."""
    import torch
    from transformers import AutoTokenizer

    from prefdata.contract.render import render
    from prefdata.storage.dataset import iter_rows

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
    eot = tokenizer.eos_token  # DeepSpeed-Chat appends end_of_conversation_token as text
    split = "sft_train" if phase == "sft" else "rm_train"
    warm_up(workdir)
    started = time.perf_counter()
    dataset, n = [], 0
    for _, row in iter_rows(workdir / "split", split):
        n += 1
        chosen = tokenizer(render(row["prompt"], row["chosen"]) + eot, max_length=MAX_LEN, padding="max_length",
                           truncation=True, return_tensors="pt")
        chosen["input_ids"] = chosen["input_ids"].squeeze(0)
        chosen["attention_mask"] = chosen["attention_mask"].squeeze(0)
        if phase == "sft":
            dataset.append(chosen)
            continue
        rejected = tokenizer(render(row["prompt"], row["rejected"]) + eot, max_length=MAX_LEN, padding="max_length",
                             truncation=True, return_tensors="pt")
        rejected["input_ids"] = rejected["input_ids"].squeeze(0)
        rejected["attention_mask"] = rejected["attention_mask"].squeeze(0)
        dataset.append((chosen, rejected))
    path = workdir / f"baseline-{phase}.pt"
    torch.save(dataset, path)
    seconds = time.perf_counter() - started
    return {"rows_in": n, "rows_out": len(dataset), "seconds": seconds, "bytes": path.stat().st_size}


def ours(workdir: Path, phase: str) -> dict:
    from transformers import AutoTokenizer

    from trainers.components.tokens import TokenizeSpec, tokenized

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
    split = "sft_train" if phase == "sft" else "rm_train"
    cache_dir = workdir / f"cache-{phase}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    warm_up(workdir)
    started = time.perf_counter()
    cache = tokenized(workdir / "split", split, tokenizer, TokenizeSpec(phase, max_seq_len=MAX_LEN), cache_dir, quiet=True)
    seconds = time.perf_counter() - started
    counts = cache.info["counts"]
    return {"rows_in": counts["rows_in"], "rows_out": counts["rows_out"], "seconds": seconds,
            "bytes": (cache.directory / "tokens.arrow").stat().st_size, "dropped_too_long": counts.get("dropped_too_long", 0)}


def open_hit(workdir: Path, what: str) -> dict:
    """Time to get a usable dataset on a cache hit: ours via `tokenized` (key check included) or torch.load."""
    from transformers import AutoTokenizer

    from trainers.components.tokens import TokenCache, TokenizeSpec, tokenized

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tok")
    spec = TokenizeSpec("sft", max_seq_len=MAX_LEN)
    if what == "build-big":
        cache = tokenized(workdir / "split", "sft_big", tokenizer, spec, workdir / "cache-big", quiet=True)
        return {"rows_out": len(cache), "bytes": (cache.directory / "tokens.arrow").stat().st_size}
    if what == "ours":
        started = time.perf_counter()
        cache = tokenized(workdir / "split", "sft_big", tokenizer, spec, workdir / "cache-big", quiet=True)
        total = time.perf_counter() - started
        assert not cache.built
        started = time.perf_counter()
        TokenCache(cache.directory, built=False)
        mapped = time.perf_counter() - started
        sample = [int(cache[i]["input_ids"].sum()) for i in range(0, len(cache), 997)]  # touch rows across the file
        return {"rows": len(cache), "seconds": total, "map_seconds": mapped, "touched": len(sample)}
    import torch

    started = time.perf_counter()
    dataset = torch.load(workdir / "baseline-sft.pt", weights_only=False)
    return {"rows": len(dataset), "seconds": time.perf_counter() - started}


def child(args: list[str]) -> None:
    kind, workdir, arg = args[0], Path(args[1]), args[2]
    result = {"baseline": baseline, "ours": ours, "open": open_hit}[kind](workdir, arg)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------------ main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per phase for the rows/s comparison")
    parser.add_argument("--open-rows", type=int, default=100_000, help="rows in the cache whose hit-open is timed")
    parser.add_argument("--vocab", type=int, default=8_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per side; the best time is reported")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "_work" / "tokenize")
    parser.add_argument("--results", type=Path, default=None, help="also write the table to this Markdown file")
    opts = parser.parse_args()
    shutil.rmtree(opts.workdir, ignore_errors=True)
    opts.workdir.mkdir(parents=True)
    prepare(opts.workdir, opts.rows, opts.open_rows, opts.vocab)
    w = str(opts.workdir)

    lines = ["| phase | measure | DeepSpeed-Chat way | prefdata cache | ratio |", "|---|---|---|---|---|"]
    for phase in ("sft", "rm"):  # the data phases of `prefdata.contract.phases`
        # Interleaved repeats, best time of each side: the machine is shared, and the best run is the least disturbed.
        runs = [(run_child("baseline", w, phase), run_child("ours", w, phase)) for _ in range(opts.repeat)]
        base = min((b for b, _ in runs), key=lambda r: r["seconds"])
        mine = min((m for _, m in runs), key=lambda r: r["seconds"])
        base_rate, our_rate = base["rows_in"] / base["seconds"], mine["rows_in"] / mine["seconds"]
        base_bpr, our_bpr = base["bytes"] / base["rows_out"], mine["bytes"] / max(mine["rows_out"], 1)
        lines += [
            f"| {phase} | rows/s (max len {MAX_LEN}) | {base_rate:,.0f} | {our_rate:,.0f} | {our_rate / base_rate:.1f}x |",
            f"| {phase} | bytes/row on disk | {base_bpr:,.0f} | {our_bpr:,.0f} | 1/{base_bpr / our_bpr:.1f} |",
            f"| {phase} | peak RSS (MiB) | {base['peak_rss_mib']:,.0f} | {mine['peak_rss_mib']:,.0f} | "
            f"{mine['peak_rss_mib'] / base['peak_rss_mib']:.2f}x |",
            f"| {phase} | rows kept | {base['rows_out']:,} (over-long truncated) | {mine['rows_out']:,} "
            f"({mine['dropped_too_long']:,} over-long dropped) | |",
        ]
    big = run_child("open", w, "build-big")
    hit, base_open = run_child("open", w, "ours"), run_child("open", w, "baseline")
    lines += [
        f"| sft | open on a hit, {hit['rows']:,} rows (ours: key check + mmap) | torch.load {base_open['rows']:,} rows: "
        f"{base_open['seconds']:.2f} s | {hit['seconds']:.3f} s (mmap alone {hit['map_seconds'] * 1000:.1f} ms) | |",
        f"| sft | open on a hit, peak RSS (MiB) | {base_open['peak_rss_mib']:,.0f} | {hit['peak_rss_mib']:,.0f} | |",
        f"| sft | cache size, {big['rows_out']:,} rows | | {big['bytes'] / 2**20:,.1f} MiB | |",
    ]
    table = "\n".join(lines)
    print(table)
    if opts.results:
        command = "python bench/tokenize_cache.py " + " ".join(sys.argv[1:])
        opts.results.write_text(f"Command: `{command}`\n\n{table}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
