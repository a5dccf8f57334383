"""Benchmark: `prefdata split` on 1,000,000 rows against the straightforward `datasets` baseline, same run.

Input: the real HH-RLHF harmless-base test rows replicated with a variant marker in the last user turn (unique ids and
groups), plus 1% exact duplicates; written once to WORKDIR/input and reused. Each method runs in its own subprocess so
its peak RSS is its own. Baseline: `Dataset.shuffle` + `train_test_split` twice (sft | rm | ppo), then `save_to_disk`
of the three parts (prefdata split writes its output too; the baseline without writing is shown as well).

    python bench/split.py                 # 1,000,000 rows
    python bench/split.py --rows 100000   # quick run
    python bench/split.py --rows 200000 --repeat 3 --verify-cost   # what verified reads (shard sha256) cost
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HH = Path(os.environ.get("PREFDATA_SHARED_DATA", REPO.parent / "shared" / "data")) / "hh-rlhf/harmless-base/test.jsonl.gz"


def build_input(directory: Path, rows: int) -> None:
    from prefdata.contract.row import make_row
    from prefdata.jobs.importer import ParsedRow, iter_parsed
    from prefdata.storage.dataset import DatasetWriter

    base = [(item.row["prompt"], item.row["chosen"], item.row["rejected"]) for item in iter_parsed(HH, "trl-implicit")
            if isinstance(item, ParsedRow)]
    duplicates = rows // 100
    with DatasetWriter(directory, command="bench", overwrite=True) as writer:
        for i in range(rows - duplicates):
            prompt, chosen, rejected = base[i % len(base)]
            variant = [*prompt[:-1], {"role": "user", "content": f"{prompt[-1]['content']} (variant {i // len(base)})"}]
            row = make_row(variant, chosen, rejected, source="hh-rlhf/harmless-base")
            writer.count_in()
            writer.write(row, "train")
            if i < duplicates:
                writer.count_in()
                writer.write(row, "train")


def run_prefdata(input_dir: str, out: str, near_dup: str, verify: bool = True) -> None:
    from prefdata.jobs.split import split_datasets

    if not verify:  # the cost of verified reads: the same split with the shard sha256 check switched off
        import functools

        from prefdata.storage import dataset

        dataset.verify_directory = functools.partial(dataset.verify_directory, checksums=False)

    split_datasets([input_dir], out, ratio=(6, 2, 2), eval_fraction=0.05, seed=1234, overwrite=True, quiet=True,
                   near_dup=float(near_dup) if near_dup != "none" else None)


def run_baseline(input_dir: str, out: str, write: str) -> None:
    from datasets import DatasetDict, disable_progress_bars, load_from_disk

    disable_progress_bars()
    dataset = load_from_disk(input_dir)["train"].shuffle(seed=1234)
    first = dataset.train_test_split(test_size=0.4, seed=1234)
    second = first["test"].train_test_split(test_size=0.5, seed=1234)
    parts = DatasetDict({"sft": first["train"], "rm": second["train"], "ppo": second["test"]})
    if write == "write":
        shutil.rmtree(out, ignore_errors=True)
        parts.save_to_disk(out)


def measure(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of this script re-run as a child with ``args``."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, *args])
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"child {args[0]} failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prefdata-bench-split"))
    parser.add_argument("--near-dup", type=float, default=None, help="Also time --near-dup THRESHOLD.")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--verify-cost", action="store_true",
                        help="Also time the split with shard checksums off: the cost of verified reads.")
    args = parser.parse_args()
    input_dir = args.workdir / f"input-{args.rows}"
    if not (input_dir / "prefdata.json").exists():
        start = time.perf_counter()
        build_input(input_dir, args.rows)
        print(f"built {args.rows:,}-row input in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    jobs = [("baseline: shuffle + train_test_split x2 + save_to_disk", ["_baseline", str(input_dir),
                                                                         str(args.workdir / "base"), "write"]),
            ("baseline without writing", ["_baseline", str(input_dir), str(args.workdir / "base"), "nowrite"]),
            ("prefdata split (group hash, dedup, 6 splits written)", ["_prefdata", str(input_dir),
                                                                      str(args.workdir / "out"), "none"])]
    if args.verify_cost:
        jobs.append(("prefdata split, shard checksums not verified", ["_prefdata_unverified", str(input_dir),
                                                                      str(args.workdir / "out"), "none"]))
    if args.near_dup is not None:
        jobs.append((f"prefdata split --near-dup {args.near_dup}", ["_prefdata", str(input_dir),
                                                                   str(args.workdir / "out-nd"), str(args.near_dup)]))
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in jobs}
    for _ in range(args.repeat):  # rounds, not job after job: a load that drifts over the run hits every job alike
        for label, child in jobs:
            runs[label].append(measure(child))
    results = {label: (min(r[0] for r in done), max(r[1] for r in done)) for label, done in runs.items()}
    base = results[jobs[0][0]][0]
    print(f"\n{args.rows:,} rows, {os.cpu_count()} CPUs, best of {args.repeat}\n")
    print(f"| {'method':<55} | {'seconds':>8} | {'vs baseline':>11} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 57}|{'-' * 10}:|{'-' * 12}:|{'-' * 13}:|")
    for label, (seconds, rss) in results.items():
        print(f"| {label:<55} | {seconds:>8.2f} | {seconds / base:>10.2f}x | {rss:>12,.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_prefdata":
        run_prefdata(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_prefdata_unverified":
        run_prefdata(*sys.argv[2:5], verify=False)
    elif len(sys.argv) > 1 and sys.argv[1] == "_baseline":
        run_baseline(*sys.argv[2:5])
    else:
        main()
