"""The LLM steps on the real HH-RLHF harmless-base test split (2,312 records) against the fake server.

- `prefdata score` (pointwise: 2 requests per pair) at --concurrency 64, server latency 100 ms in its own process:
  cold (every request sent) and warm (every reply from the cache), next to the ideal time requests × latency / 64.
- The near-duplicate index used by `synthesize` over the real prompts at ROUGE-L 0.7: duplicates found, exact LCS
  computations done versus the all-pairs count, and the time next to the all-pairs loop on a subsample.

    python bench/llm_real_data.py [--data ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the fake server lives in tests/

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from fake_openai_server import spawn  # noqa: E402

from prefdata.contract.errors import RowError  # noqa: E402
from prefdata.contract.row import make_row  # noqa: E402
from prefdata.formats.hh import split_pair  # noqa: E402
from prefdata.jobs.score import score  # noqa: E402
from prefdata.llm.engine import LLMConfig  # noqa: E402
from prefdata.pipeline.similarity import NearDuplicateIndex, first_of_near_duplicates, rouge_l, tokens  # noqa: E402
from prefdata.storage.dataset import DatasetWriter  # noqa: E402


def build_dataset(source: Path, out: Path) -> tuple[int, list[str]]:
    rows, prompts = 0, []
    with DatasetWriter(out, command="bench") as writer, gzip.open(source, "rt", encoding="utf-8") as f:
        for index, line in enumerate(f):
            writer.count_in()
            record = json.loads(line)
            try:
                prompt, chosen, rejected = split_pair(record["chosen"], record["rejected"])
                row = make_row(prompt, chosen, rejected, source="hh-rlhf/harmless-base")
            except RowError as e:
                writer.quarantine(e.reason, str(e), record, file=str(source), index=index)
                continue
            writer.write(row)
            rows += 1
            prompts.append(prompt[0]["content"])
    return rows, prompts


def all_pairs_kept(texts: list[str], threshold: float) -> int:
    kept: list[list[str]] = []
    for text in texts:
        t = tokens(text)
        if not any(rouge_l(t, other) >= threshold for other in kept):
            kept.append(t)
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/hh-rlhf/harmless-base/test.jsonl.gz")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--subsample", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows, prompts = build_dataset(args.data, tmp / "hh")
        server, url = spawn(args.latency, reply="score")
        try:
            config = LLMConfig(model="bench-judge", base_url=url, concurrency=args.concurrency, temperature=0.0,
                               cache=str(tmp / "cache.sqlite"))
            timings = {}
            for run in ("cold", "warm"):
                start = time.perf_counter()
                manifest = score(tmp / "hh", tmp / f"scored-{run}", config=config, quiet=True)
                timings[run] = (time.perf_counter() - start, manifest["llm"]["requests"], manifest["llm"]["cached_hits"],
                               manifest["judge"]["scored"])
        finally:
            server.kill()
            server.wait()
        requests = timings["cold"][1]
        ideal = requests * args.latency / args.concurrency
        print(f"\n`prefdata score` on {rows:,} real HH pairs, --concurrency {args.concurrency}, {args.latency * 1000:.0f} ms "
              "per request\n")
        print("| run | rows scored | requests sent | cache hits | seconds | ideal seconds (requests × latency / concurrency) |")
        print("|---|---:|---:|---:|---:|---:|")
        for run, (seconds, sent, hits, scored) in timings.items():
            print(f"| {run} | {scored:,} | {sent:,} | {hits:,} | {seconds:.1f} | "
                  f"{sent * args.latency / args.concurrency:.1f} |")
        print(f"\ncold run: {ideal / timings['cold'][0]:.0%} of the ideal throughput; warm run: "
              f"{timings['cold'][0] / timings['warm'][0]:.0f}× faster than cold")

    start = time.perf_counter()
    index = NearDuplicateIndex(0.7)
    duplicates = len(prompts) - len(first_of_near_duplicates(prompts, 0.7, index))
    indexed_s = time.perf_counter() - start
    n = len(prompts)
    sub = prompts[: args.subsample]
    start = time.perf_counter()
    brute_kept = all_pairs_kept(sub, 0.7)
    brute_s = time.perf_counter() - start
    sub_index = NearDuplicateIndex(0.7)
    start = time.perf_counter()
    sub_kept = len(first_of_near_duplicates(sub, 0.7, sub_index))
    sub_s = time.perf_counter() - start
    assert sub_kept == brute_kept, (sub_kept, brute_kept)
    print(f"\nNear-duplicate filter (ROUGE-L >= 0.7) over the {n:,} real first-turn prompts\n")
    print("| texts | method | near-duplicates | exact LCS computed | all pairs | seconds |")
    print("|---:|---|---:|---:|---:|---:|")
    print(f"| {n:,} | MinHash/LSH + ROUGE-L | {duplicates:,} | {index.comparisons:,} | {n * (n - 1) // 2:,} | "
          f"{indexed_s:.2f} |")
    print(f"| {len(sub):,} | MinHash/LSH + ROUGE-L | {len(sub) - sub_kept:,} | {sub_index.comparisons:,} | "
          f"{len(sub) * (len(sub) - 1) // 2:,} | {sub_s:.2f} |")
    print(f"| {len(sub):,} | all-pairs loop (same decisions) | {len(sub) - brute_kept:,} | up to all | "
          f"{len(sub) * (len(sub) - 1) // 2:,} | {brute_s:.2f} |")


if __name__ == "__main__":
    main()
