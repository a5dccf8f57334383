"""Benchmark: HH-RLHF .jsonl.gz -> dataset directory, against a `datasets` baseline and a pyarrow floor.

The real harmless-base test file (2,312 records) is replicated to ``--rows`` records, each copy made unique by a tag in
its first human turn (so ids differ and nothing is deduplicated away), and laid out as the Hub repository. Then, each
in a fresh subprocess so that caches and memory do not leak between them:

* prefdata   `download_hh(..., from_path=copy)`: file -> parsed, checked rows -> dataset directory (+ quarantine).
* baseline   the straightforward way, as TRL's hh-rlhf script does: `datasets.load_dataset("json")`, `.map` with a
             per-row Python function doing the same parse (`split_pair` + `make_row`), `.filter`, `save_to_disk`.
* floor      pyarrow alone: decompress and parse the JSON into an Arrow table (no per-row work at all).

The three runs are interleaved ``--repeat`` times (default 3) and each keeps its best wall time and its least CPU
time, so that other jobs on a shared machine distort the ratios less. Peak RSS: prefdata on ``--rss-rows`` small and
large copies (default 100,000 and 1,000,000), main process and the largest worker.

``--whole-process`` times the import as users feel it instead: each run is a whole Python process, start-up and
library imports included, timed from outside: ``python -m prefdata.cli download hh-rlhf --from COPY``; the baseline
script (imports `datasets`, then load_dataset/map/filter/save_to_disk); the floor (imports pyarrow, reads the JSON).
Run:  python bench/import_hh.py [--rows 200000] [--repeat 3] [--rss-rows 100000,1000000] [--workdir DIR]
      python bench/import_hh.py --whole-process [--rows 100000] [--repeat 3] [--compare OTHER_CHECKOUT]
(The real file is read from ``$PREFDATA_SHARED_DATA`` or ``../shared/data``, as the tests do.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED_DATA = Path(os.environ.get("PREFDATA_SHARED_DATA",
                                  Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
REAL = SHARED_DATA / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"


def replicate(real: Path, rows: int, root: Path) -> Path:
    """A Hub-layout copy ``root/harmless-base/test.jsonl.gz`` with ``rows`` unique records made from the real ones."""
    records = [json.loads(line) for line in gzip.open(real, "rt", encoding="utf-8")]
    path = root / "harmless-base" / "test.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
        for i in range(rows):
            record = records[i % len(records)]
            copy = i // len(records)
            if copy:  # tag the first human turn identically on both sides: the pair parses exactly as the original
                tag = f"\n\nHuman: [copy {copy}] "
                record = {k: v.replace("\n\nHuman: ", tag, 1) if isinstance(v, str) else v for k, v in record.items()}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def run_prefdata(copy: str, out: str) -> dict:
    from prefdata.jobs.download import download_hh

    start = time.perf_counter()
    manifest = download_hh(out, "harmless-base", from_path=copy, quiet=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_in": manifest["counts"]["records_in"], "rows_out": manifest["counts"]["rows_out"]}


def _baseline_parse(example: dict) -> dict:
    from prefdata.contract.errors import RowError
    from prefdata.contract.row import PREFERENCE_SCHEMA, make_row
    from prefdata.formats.hh import split_pair

    empty = dict.fromkeys([*PREFERENCE_SCHEMA.names, "reason"])  # every column, whichever schema version
    try:
        prompt, chosen, rejected = split_pair(example["chosen"], example["rejected"])
        row = make_row(prompt, chosen, rejected, source="hh-rlhf/harmless-base")
    except RowError as e:
        return {**empty, "reason": e.reason}
    return {**row, "reason": None}


def run_baseline(path: str, out: str) -> dict:
    import datasets

    datasets.disable_progress_bars()
    cache = tempfile.mkdtemp(prefix="hh-bench-cache-", dir=Path(out).parent)
    start = time.perf_counter()
    raw = datasets.load_dataset("json", data_files={"test": path}, cache_dir=cache)
    parsed = raw.map(_baseline_parse)
    kept = parsed.filter(lambda reason: reason is None, input_columns="reason")
    kept.remove_columns("reason").save_to_disk(out)
    seconds = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": seconds, "rows_in": raw["test"].num_rows, "rows_out": kept["test"].num_rows}


def run_floor(path: str, out: str) -> dict:
    import pyarrow as pa
    import pyarrow.json as pj

    start = time.perf_counter()
    table = pj.read_json(pa.input_stream(path, compression="gzip"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_in": table.num_rows, "rows_out": table.num_rows}


def process_child(kind: str, source: str, out: str) -> None:
    """The baseline or the floor as a whole process would run it: libraries imported here, after start-up."""
    if kind == "baseline":
        import datasets  # noqa: F401  (its import cost is part of what a user of the baseline waits for)

        result = run_baseline(source, out)
    else:
        result = run_floor(source, out)
    print(json.dumps({"rows_in": result["rows_in"], "rows_out": result["rows_out"]}))


def measure_process(kind: str, copy: Path, path: Path, out: Path, code: Path | None = None) -> dict:
    """One whole process, timed from outside: wall from spawn to exit, CPU of the process and its workers.
    ``code``: run the prefdata found there (another checkout) instead of the one on the path."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    if kind == "prefdata":
        argv = [sys.executable, "-m", "prefdata.cli", "download", "hh-rlhf", "--from", str(copy), "--out", str(out),
                "--quiet"]
    else:
        argv = [sys.executable, "-P", __file__, "--process", kind, str(path), str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: `python -m` puts the working directory ahead of PYTHONPATH, so run from the code being measured
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=code)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{kind} process failed:\n{done.stderr[-3000:]}")
    if kind == "prefdata":
        counts = json.loads((out / "prefdata.json").read_text())["counts"]
        rows = {"rows_in": counts["records_in"], "rows_out": counts["rows_out"]}
    else:
        rows = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, **rows}


def whole_process(copy: Path, path: Path, work: Path, repeat: int, compare: Path | None) -> dict[str, dict]:
    """Best of ``repeat`` interleaved whole processes; with ``compare``, also prefdata as that checkout has it."""
    kinds = {"prefdata": ("prefdata", None), "baseline": ("baseline", None), "floor": ("floor", None)}
    if compare is not None:
        kinds[f"prefdata at {compare}"] = ("prefdata", compare)
    runs: dict[str, list[dict]] = {name: [] for name in kinds}
    for _ in range(repeat):  # interleaved, as the in-process runs are
        for name, (kind, code) in kinds.items():
            runs[name].append(measure_process(kind, copy, path, work / "out-process", code))
    return {name: best(rs) for name, rs in runs.items()}


def child(kind: str, source: str, out: str) -> None:
    """Run one measurement in this (fresh) process and print its result as JSON, with the peak RSS in MiB."""
    result = {"prefdata": run_prefdata, "baseline": run_baseline, "floor": run_floor}[kind](source, out)
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result["rss_mib"] = own.ru_maxrss / 1024
    result["worker_rss_mib"] = workers.ru_maxrss / 1024
    result["cpu_seconds"] = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime  # whole process tree
    print(json.dumps(result))


def measure(kind: str, source: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    # -P: the bench folder is not put on the import path, so a sibling script cannot shadow a module (tokenize.py)
    done = subprocess.run([sys.executable, "-P", __file__, "--child", kind, str(source), str(out)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    """The fastest run, with the least CPU time of all runs: what the code costs when nothing else gets in the way."""
    fastest = min(runs, key=lambda r: r["seconds"])
    return {**fastest, "cpu_seconds": min(r["cpu_seconds"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="records in the timed copy")
    parser.add_argument("--rss-rows", default="100000,1000000", help="small,large copies for peak RSS ('' skips)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (best wall and best CPU kept)")
    parser.add_argument("--whole-process", action="store_true",
                        help="time whole processes (start-up and imports included) instead of the work alone")
    parser.add_argument("--compare", type=Path, default=None,
                        help="with --whole-process: also time the prefdata of another checkout (e.g. before a change)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--process", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.process:
        process_child(*args.process)
        return
    work = Path(tempfile.mkdtemp(prefix="hh-bench-", dir=args.workdir))
    try:
        copy = work / f"copy-{args.rows}"
        path = replicate(REAL, args.rows, copy)
        print(f"{args.rows:,} records, {path.stat().st_size / 2**20:.1f} MiB gzip; {os.cpu_count()} cores",
              file=sys.stderr)
        load_start = f"{os.getloadavg()[0]:.2f}"
        if args.whole_process:
            results = whole_process(copy, path, work, args.repeat, args.compare)
        else:
            runs: dict[str, list[dict]] = {"prefdata": [], "baseline": [], "floor": []}
            for _ in range(args.repeat):  # interleaved, so that a busy spell on a shared machine hits all three alike
                runs["prefdata"].append(measure("prefdata", copy, work / "out-prefdata"))
                runs["baseline"].append(measure("baseline", path, work / "out-baseline"))
                runs["floor"].append(measure("floor", path, work / "out-floor"))
            results = {name: best(rs) for name, rs in runs.items()}
        assert results["prefdata"]["rows_out"] == results["baseline"]["rows_out"], "prefdata and baseline disagree"
        print(f"load average {load_start} at the start, {os.getloadavg()[0]:.2f} at the end; "
              f"best of {args.repeat} interleaved runs each", file=sys.stderr)
        what = "records, whole processes" if args.whole_process else "records"
        print(f"\n| run ({args.rows:,} {what}) | wall s | rows/s | speed vs baseline | time vs floor | CPU s "
              "(all processes) | CPU vs floor | rows out | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        base, floor = results["baseline"], results["floor"]
        for name, r in results.items():
            rss = "" if "rss_mib" not in r else f"{r['rss_mib']:.0f}" + (
                f" (+ worker {r['worker_rss_mib']:.0f})" if r["worker_rss_mib"] > 1 else "")
            print(f"| {name} | {r['seconds']:.2f} | {r['rows_in'] / r['seconds']:,.0f} "
                  f"| {base['seconds'] / r['seconds']:.2f}x | {r['seconds'] / floor['seconds']:.2f}x "
                  f"| {r['cpu_seconds']:.1f} | {r['cpu_seconds'] / floor['cpu_seconds']:.2f}x | {r['rows_out']:,} | {rss} |")
        shutil.rmtree(copy)
        sizes = [int(n) for n in args.rss_rows.split(",") if n.strip()] if not args.whole_process else []
        if sizes:
            print("\n| peak RSS, prefdata | records | seconds | main MiB | largest worker MiB |")
            print("|---|---|---|---|---|")
            peaks = []
            for n in sizes:
                copy = work / f"copy-{n}"
                replicate(REAL, n, copy)
                r = measure("prefdata", copy, work / f"out-{n}")
                peaks.append(max(r["rss_mib"], r["worker_rss_mib"]))
                print(f"| | {n:,} | {r['seconds']:.1f} | {r['rss_mib']:.0f} | {r['worker_rss_mib']:.0f} |")
                shutil.rmtree(copy)
                shutil.rmtree(work / f"out-{n}", ignore_errors=True)
            print(f"\nlargest/smallest peak RSS: {peaks[-1] / peaks[0]:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
