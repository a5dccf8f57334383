"""Benchmark: `prefdata validate` on a file and on a dataset directory, against read-only baselines in the same run.

Input: the real HH-RLHF harmless-base test file (2,312 records), split into conversational preference pairs with
`split_pair` and replicated to ``--records`` records, each copy made unique by a tag in its first user turn.

* file       `validate_files(schema="preference_conversational")` (stream, parse, check every record with jsonschema
             and with the row rules through the import parser)
  baseline   the same stream parsed by `iter_records` with no checks: what reading alone costs.
* directory  `validate_directory` (manifest schema, sha256 of every shard, Arrow schema, every row's contract and id)
  baseline   reading every row of the same directory with `prefdata.storage.dataset.iter_rows` (datasets, batch by batch).

Run:  python bench/validate_bench.py [--records 100000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("PREFDATA_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
REAL = SHARED / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"


def pairs_from_real(real: Path) -> list[tuple[list[dict], str, str]]:
    """The real records that make valid rows (the file's few defective ones are left out)."""
    from prefdata.contract.errors import RowError
    from prefdata.contract.row import make_row
    from prefdata.formats.hh import split_pair
    from prefdata.storage.readers import iter_records

    pairs = []
    for record in iter_records(real):
        try:
            pair = split_pair(record.value["chosen"], record.value["rejected"])
            make_row(*pair, source="check")
        except RowError:
            continue
        pairs.append(pair)
    return pairs


def make_inputs(workdir: Path, records: int) -> tuple[Path, Path]:
    """A conversational JSONL file and a dataset directory holding the same ``records`` unique pairs."""
    from prefdata.contract.row import make_row
    from prefdata.storage.dataset import DatasetWriter

    pairs = pairs_from_real(REAL)
    jsonl = workdir / "pairs.jsonl"
    directory = workdir / "pairs-ds"
    with open(jsonl, "w", encoding="utf-8") as f, DatasetWriter(directory, command="bench") as writer:
        for i in range(records):
            prompt, chosen, rejected = pairs[i % len(pairs)]
            prompt = [dict(m) for m in prompt]
            prompt[0]["content"] = f"[{i}] {prompt[0]['content']}"
            f.write(json.dumps({"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                                "rejected": [{"role": "assistant", "content": rejected}]}, ensure_ascii=False) + "\n")
            writer.count_in()
            writer.write(make_row(prompt, chosen, rejected, source="bench"))
    return jsonl, directory


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from prefdata.jobs.validate import validate_directory, validate_files
    from prefdata.storage.dataset import iter_rows
    from prefdata.storage.readers import iter_records

    workdir = Path(tempfile.mkdtemp(dir=args.workdir, prefix="validate-bench-"))
    try:
        jsonl, directory = make_inputs(workdir, args.records)
        size = jsonl.stat().st_size
        read_file, n = timed(lambda: sum(1 for _ in iter_records(jsonl)))
        check_file, report = timed(lambda: validate_files([jsonl], schema="preference_conversational", out=None))
        assert report.ok and report.records == n == args.records, report.summary()
        read_dir, rows = timed(lambda: sum(1 for _ in iter_rows(directory)))
        check_dir, report = timed(lambda: validate_directory(directory, out=None))
        assert report.ok and report.rows == rows == args.records, report.summary()

        print(f"{args.records:,} records ({size / 1e6:.1f} MB JSONL) from the real HH-RLHF harmless-base test file\n")
        print(f"| {'step':<50} | {'seconds':>8} | {'records/s':>10} | {'x baseline':>10} |")
        print(f"|{'-' * 52}|{'-' * 10}|{'-' * 12}|{'-' * 12}|")
        for name, seconds, base in (
            ("baseline: read + parse the JSONL (iter_records)", read_file, read_file),
            ("validate FILE --schema preference_conversational", check_file, read_file),
            ("baseline: read every row of the directory", read_dir, read_dir),
            ("validate DIR (checksums, schema, rows, ids)", check_dir, read_dir),
        ):
            print(f"| {name:<50} | {seconds:8.2f} | {args.records / seconds:10,.0f} | {seconds / base:10.2f} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
