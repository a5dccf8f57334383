"""Throughput of `prefdata import` on the real HH-RLHF harmless-base test file, replicated to a larger size.

Baseline, measured in the same run: the bare minimum a hand-written script does for the same rows (gzip + json.loads
+ `split_pair` + `make_row`, nothing written). The ratio is what detection, quarantine, the Arrow shards, checksums and
the manifest cost on top. Usage: ``python bench/bench_import.py [--copies 20]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from prefdata.contract.errors import RowError
from prefdata.contract.row import make_row
from prefdata.formats.hh import split_pair
from prefdata.jobs.importer import import_files

REAL = Path(os.environ.get("PREFDATA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HH = REAL / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"


def replicate(path: Path, copies: int) -> Path:
    """``copies`` copies of every record; copy k tags the first human turn so every id stays unique."""
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        for k in range(copies):
            tag = f"\n\nHuman: [copy {k}] "
            for r in records:
                row = {side: r[side].replace("\n\nHuman: ", tag, 1) for side in ("chosen", "rejected")}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def baseline(path: Path) -> int:
    rows = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            try:
                prompt, chosen, rejected = split_pair(record["chosen"], record["rejected"])
                make_row(prompt, chosen, rejected, source="custom/x")
                rows += 1
            except RowError:
                pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        data = replicate(work / "hh.jsonl.gz", args.copies)
        records = 2312 * args.copies
        best_base = best_import = float("inf")
        for i in range(args.repeat):
            start = time.perf_counter()
            base_rows = baseline(data)
            best_base = min(best_base, time.perf_counter() - start)
            start = time.perf_counter()
            manifest = import_files([data], work / f"out{i}", quiet=True)
            best_import = min(best_import, time.perf_counter() - start)
            assert manifest["counts"]["rows_out"] == base_rows
        print(f"input: {records:,} records ({data.stat().st_size / 1e6:.1f} MB gzip), {base_rows:,} rows; "
              f"best of {args.repeat}")
        print("| step | seconds | records/s | ratio to baseline |\n|---|---:|---:|---:|")
        print(f"| baseline: gzip+json+split_pair+make_row | {best_base:.2f} | {records / best_base:,.0f} | 1.00 |")
        print(f"| prefdata import (detect, parse, write Arrow, manifest) | {best_import:.2f} | "
              f"{records / best_import:,.0f} | {best_import / best_base:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
