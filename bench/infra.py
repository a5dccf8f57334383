"""Benchmark: prefdata's hand-written storage/dedup infrastructure against the library that could replace it (issue #9).

Each part measures ours and the library in the same run, on the real HH-RLHF harmless-base test file (2,312 records)
replicated with a unique tag per copy, and prints a table of ratios (library / ours) next to the goal it decides:

  json   (a) `json_array.iter_json_array` vs `ijson.items` (yajl2_c): parse speed; peak RSS at N and 4N elements (flat
         memory); peak RSS on one oversized element under ``--max-record-bytes`` (enforcement); the bytes an import of a
         JSON array writes (quarantine lines carry the element's line).
  state  (b) `SplitWriter.close` writing ``state.json`` / ``dataset_info.json`` itself vs `Dataset.save_to_disk` of the
         finished shards: `prefdata import` time and whether every output file is byte-identical.
  dedup  (c) `dedup.near_duplicates` (numpy MinHash, LSH banding) vs `datasketch` MinHash + MinHashLSH (same
         shingles, same bands): same decisions on the real rows at several thresholds, and `prefdata split --near-dup
         0.9` time on replicated rows; then the clustering of the similar pairs: the hand-written union-find it used
         before vs scipy's connected components (`dedup.keep_smallest_id` now).

    python bench/infra.py                        # all three parts
    python bench/infra.py --only dedup --rows 20000
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HH = Path(os.environ.get("PREFDATA_SHARED_DATA", REPO.parent / "shared" / "data")) / "hh-rlhf/harmless-base/test.jsonl.gz"
MiB = 1024 * 1024


def hh_records(copies: int) -> Iterator[dict[str, str]]:
    """The real records, ``copies`` times; copy k tags the first human turn so every id stays unique."""
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    for k in range(copies):
        for r in records:
            yield {side: r[side].replace("\n\nHuman: ", f"\n\nHuman: [copy {k}] ", 1) for side in ("chosen", "rejected")}


def write_json_array(path: Path, records: int) -> Path:
    """A JSON array of ``records`` elements, one per line; every 50th is a string, so it is quarantined by line."""
    copies = -(-records // 2312)
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for i, record in enumerate(hh_records(copies)):
            if i == records:
                break
            value = record if i % 50 else record["chosen"]
            out.write(("" if i == 0 else ",\n") + json.dumps(value, ensure_ascii=False, indent=1))
        out.write("\n]\n")
    return path


def best_of(repeat: int, *runs: Callable[[], object]) -> list[float]:
    """Best wall time of each run, the runs interleaved ``repeat`` times so load hits them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def child_peak_rss(*args: str) -> tuple[float, str]:
    """Peak RSS (MiB, the child's own VmHWM: ru_maxrss would carry this parent's peak over the exec) and last line of
    this script re-run as a child with ``args``."""
    output = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True).stdout
    peak, _, said = output.strip().splitlines()[-1].partition("\t")
    return float(peak), said


def report_peak_rss(said: object) -> None:
    """Child side of `child_peak_rss`: print this process's peak RSS and what it has to say."""
    peak_kib = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    print(f"{peak_kib / 1024:.0f}\t{said}")


def tree_digests(root: Path) -> dict[str, str]:
    """sha256 of every file of a dataset directory but the manifest (which records paths and times)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "prefdata.json"}


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


# --- (a) JSON arrays ------------------------------------------------------------------------------------------------


def ijson_array(stream, file: str, max_bytes: int):
    """What `json_array.iter_json_array` would be on ijson: elements, no line numbers, a byte budget per element."""
    import ijson

    from prefdata.contract.errors import PrefdataError
    from prefdata.storage.readers import BadRecord, Record

    class Budget:
        """The stream, refusing to read more than ``max_bytes`` (plus one read) since the last element came out."""

        def __init__(self) -> None:
            self.read_so_far = self.mark = 0

        def read(self, n: int) -> bytes:
            if self.read_so_far - self.mark > max_bytes:
                raise PrefdataError(f"element {index} is larger than {max_bytes} bytes", file=file)
            data = stream.read(n)
            self.read_so_far += len(data)
            return data

    budget, index = Budget(), 0
    try:
        for index, value in enumerate(ijson.items(budget, "item", use_float=True)):  # noqa: B007
            budget.mark = budget.read_so_far
            if isinstance(value, dict):
                yield Record(file, index, None, value)
            else:
                yield BadRecord(file, index, None, "not_an_object",
                                f"array element is a JSON {type(value).__name__}, not an object", value)
    except ijson.JSONError as e:
        raise PrefdataError(f"truncated or invalid JSON: {e}", file=file) from None


def count_json(path: str, which: str, max_bytes: str) -> None:
    """Child: read every element of ``path`` with one reader; print the count or the one-line error."""
    from prefdata.contract.errors import PrefdataError
    from prefdata.storage import json_array, readers

    if which == "ijson":
        json_array.iter_json_array = ijson_array
    try:
        report_peak_rss(sum(1 for _ in readers.iter_records(path, "json", max_record_bytes=int(max_bytes))))
    except PrefdataError as e:
        report_peak_rss(f"error: {e}")


def bench_json(work: Path, records: int, repeat: int) -> None:
    from prefdata.jobs.importer import import_files
    from prefdata.storage import json_array, readers

    ours_reader = json_array.iter_json_array
    small = write_json_array(work / "small.json", records)
    large = write_json_array(work / "large.json", 4 * records)
    huge = work / "huge.json"
    with open(huge, "w") as f:  # one element of 128 MiB: a limit of 16 MiB must stop the read, not buffer it
        f.write('[{"chosen": "')
        for _ in range(128):
            f.write("x" * MiB)
        f.write('"}]')

    def read_with(reader) -> Callable[[], object]:
        def run() -> int:
            json_array.iter_json_array = reader
            return sum(1 for _ in readers.iter_records(small, "json"))
        return run

    ours_s, lib_s = best_of(repeat, read_with(ours_reader), read_with(ijson_array))
    rss = {(which, name): child_peak_rss("_json", str(path), which, str(limit))
           for which in ("ours", "ijson") for name, path, limit in
           (("N", small, 64 * MiB), ("4N", large, 64 * MiB), ("huge", huge, 16 * MiB))}

    def import_with(reader) -> Callable[[], object]:
        def run() -> None:
            json_array.iter_json_array = reader
            import_files([small], work / f"import-{reader.__name__}", overwrite=True, quiet=True)
        return run

    import_with(ours_reader)()  # warm-up: the first import pays for importing datasets
    import_s = dict(zip(("ours", "ijson"), best_of(repeat, import_with(ours_reader), import_with(ijson_array))))
    json_array.iter_json_array = ours_reader
    digests = {"ours": tree_digests(work / f"import-{ours_reader.__name__}"), "ijson": tree_digests(work / "import-ijson_array")}
    same = [name for name in digests["ours"] if digests["ours"][name] == digests["ijson"].get(name)]
    lines = [json.loads(line).get("line") for line in (work / "import-ijson_array/quarantine.jsonl").open()][:3]
    table(f"(a) JSON array reader, {records:,} HH elements (N), best of {repeat}", ["measure", "ours", "ijson",
          "ijson / ours"], [
        ["parse + iterate N elements, s", f"{ours_s:.3f}", f"{lib_s:.3f}", f"{lib_s / ours_s:.2f}x"],
        ["peak RSS, N elements, MiB", f"{rss['ours', 'N'][0]:.0f}", f"{rss['ijson', 'N'][0]:.0f}", ""],
        ["peak RSS, 4N elements, MiB", f"{rss['ours', '4N'][0]:.0f}", f"{rss['ijson', '4N'][0]:.0f}", ""],
        ["RSS 4N / RSS N (flat memory)", f"{rss['ours', '4N'][0] / rss['ours', 'N'][0]:.2f}",
         f"{rss['ijson', '4N'][0] / rss['ijson', 'N'][0]:.2f}", ""],
        ["one 128 MiB element, limit 16 MiB: peak RSS MiB", f"{rss['ours', 'huge'][0]:.0f}",
         f"{rss['ijson', 'huge'][0]:.0f}", ""],
        ["  ... what the reader said", rss["ours", "huge"][1][:70], rss["ijson", "huge"][1][:70], ""],
        ["`prefdata import` of the N-element array, s", f"{import_s['ours']:.2f}",
         f"{import_s['ijson']:.2f}", f"{import_s['ijson'] / import_s['ours']:.2f}x"],
        ["output files byte-identical to ours", "", f"{len(same)} of {len(digests['ours'])} "
         f"(differ: {', '.join(sorted(set(digests['ours']) - set(same))) or 'none'})", ""],
        ["  quarantine `line` of the first bad elements", "", f"{lines} (ours: element start lines)", ""],
    ])
    print("\nijson's own peak RSS with no byte budget (plain `ijson.items`) on the 128 MiB element: "
          f"{child_peak_rss('_ijson_plain', str(huge))[0]:.0f} MiB")


def ijson_plain(path: str) -> None:
    import ijson

    with open(path, "rb") as f:
        report_peak_rss(sum(1 for _ in ijson.items(f, "item")))


# --- (b) state.json / dataset_info.json -----------------------------------------------------------------------------


def close_with_save_to_disk(self) -> dict:
    """`SplitWriter.close` handing the finished shards to `Dataset.save_to_disk` (state and info files included)."""
    from datasets import Dataset, DatasetInfo, NamedSplit, concatenate_datasets, disable_progress_bars

    from prefdata.storage.dataset import file_sha256

    disable_progress_bars()
    self._flush()
    if self._writer is None and not self._shards:
        self._write_arrow(self.schema.empty_table())
    self._close_shard()
    scratch = self.directory.parent / f".{self.name}.scratch"
    scratch.mkdir()
    parts = []
    for index, (tmp_path, _) in enumerate(self._shards):
        moved = scratch / f"{index:05d}.arrow"
        os.replace(tmp_path, moved)
        parts.append(moved)
    fingerprint = hashlib.sha256("".join(file_sha256(p) for p in parts).encode()).hexdigest()[:16]
    loaded = [Dataset.from_file(str(p), info=DatasetInfo(features=self.features), split=NamedSplit(self.name))
              for p in parts]
    dataset = loaded[0] if len(loaded) == 1 else concatenate_datasets(loaded)
    dataset._fingerprint = fingerprint
    dataset.save_to_disk(str(self.directory), max_shard_size=self.max_shard_bytes)
    shutil.rmtree(scratch)
    shards = [{"file": p.name, "rows": Dataset.from_file(str(p)).num_rows, "bytes": p.stat().st_size,
               "sha256": file_sha256(p)} for p in sorted(self.directory.glob("data-*.arrow"))]
    return {"rows": self.rows, "fingerprint": fingerprint, "shards": shards}


def bench_state(work: Path, records: int, repeat: int) -> None:
    from prefdata.jobs.importer import import_files
    from prefdata.storage.dataset import SplitWriter

    data = work / "hh.jsonl.gz"
    with gzip.open(data, "wt", encoding="utf-8", compresslevel=1) as out:
        for i, record in enumerate(hh_records(-(-records // 2312))):
            if i == records:
                break
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    ours_close = SplitWriter.close

    def import_with(close, out: Path) -> Callable[[], object]:
        def run() -> None:
            SplitWriter.close = close
            try:
                import_files([data], out, overwrite=True, quiet=True)
            finally:
                SplitWriter.close = ours_close
        return run

    import_with(ours_close, work / "warm")()  # imports datasets, pyarrow kernels: outside the clock for both
    ours_s, lib_s = best_of(repeat, import_with(ours_close, work / "state-ours"),
                            import_with(close_with_save_to_disk, work / "state-lib"))
    ours, lib = tree_digests(work / "state-ours"), tree_digests(work / "state-lib")
    table(f"(b) dataset directory state files, `prefdata import` of {records:,} HH records, best of {repeat}",
          ["measure", "ours (hand-written state files)", "save_to_disk", "save_to_disk / ours"], [
              ["import wall s", f"{ours_s:.2f}", f"{lib_s:.2f}", f"{lib_s / ours_s:.2f}x"],
              *[[f"`{name}` byte-identical", "", "yes" if ours[name] == lib.get(name) else "**no**", ""]
                for name in ours],
              ["files only in save_to_disk's output", "", ", ".join(sorted(set(lib) - set(ours))) or "none", ""],
          ])
    for name in ("train/state.json", "train/dataset_info.json"):
        a, b = (work / d / name for d in ("state-ours", "state-lib"))
        if a.read_bytes() != b.read_bytes():
            diff = [(x, y) for x, y in zip(a.read_text().splitlines(), b.read_text().splitlines()) if x != y][:2]
            print(f"\n{name}: first differing lines (ours, save_to_disk): {diff}")


# --- (c) near-duplicates --------------------------------------------------------------------------------------------


def datasketch_near_duplicates(table, threshold: float, *, rows=None, num_perm: int = 64, ngram: int = 3,
                               progress=None, **_):
    """`dedup.near_duplicates` built from datasketch (MinHash, MinHashLSH with our bands) and scipy components."""
    import pyarrow as pa
    from datasketch import MinHash, MinHashLSH

    from prefdata.pipeline import dedup

    rows = np.arange(table.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    texts = dedup.row_texts(table.take(pa.array(rows))).to_pylist()
    shingle_sets = []
    for text in texts:  # the same shingles as ours: word n-grams of the lower-cased text, punctuation dropped
        words = re.sub(r"[^\w\s]+", " ", text.lower()).split()
        grams = [words[i : i + ngram] for i in range(len(words) - ngram + 1)] or ([words] if words else [])
        shingle_sets.append([" ".join(g).encode("utf-8") for g in grams])
    signatures = MinHash.bulk(shingle_sets, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=dedup.lsh_params(threshold, num_perm))
    for key, (shingles, signature) in enumerate(zip(shingle_sets, signatures)):
        if shingles:
            lsh.insert(key, signature)
    first, second = [], []
    for key, (shingles, signature) in enumerate(zip(shingle_sets, signatures)):
        for other in lsh.query(signature) if shingles else ():
            if other > key and signature.jaccard(signatures[other]) >= threshold:
                first.append(key)
                second.append(other)
    return dedup.keep_smallest_id(np.array(first, dtype=np.int64), np.array(second, dtype=np.int64),
                                  table.column("id").take(pa.array(rows)))


def union_find_keep_smallest_id(a: np.ndarray, b: np.ndarray, ids) -> tuple[np.ndarray, np.ndarray]:
    """The hand-written union-find that `dedup.keep_smallest_id` used before scipy (kept here as the baseline)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent.get(x, x)
        return root

    members = np.unique(np.concatenate([a, b]))
    member_ids = pc.take(ids, pa.array(members)).to_pylist()
    rank = {int(m): r for r, m in enumerate(members[np.argsort(member_ids, kind="stable")])}
    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(rank[x]), find(rank[y])
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    by_rank = {r: m for m, r in rank.items()}
    dropped = [m for m in members.tolist() if find(rank[m]) != rank[m]]
    return np.array(dropped, dtype=np.int64), np.array([by_rank[find(rank[m])] for m in dropped], dtype=np.int64)


def bench_dedup(work: Path, rows: int, repeat: int) -> None:
    import pyarrow as pa

    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "tests"))
    from split import build_input
    from support import hh_rows

    from prefdata.contract.row import PREFERENCE_SCHEMA
    from prefdata.jobs.split import split_datasets
    from prefdata.pipeline import dedup

    real = pa.Table.from_pylist(hh_rows(HH), schema=PREFERENCE_SCHEMA)
    decisions = []
    for threshold in (0.5, 0.7, 0.8, 0.9):
        ids = real.column("id").to_pylist()
        found = {}
        for name, near in (("ours", dedup.near_duplicates), ("datasketch", datasketch_near_duplicates)):
            dropped, kept = near(real, threshold)
            found[name] = {(ids[d], ids[k]) for d, k in zip(dropped, kept)}
        decisions.append([threshold, len(found["ours"]), len(found["datasketch"]),
                          len(found["ours"] & found["datasketch"]), "yes" if found["ours"] == found["datasketch"]
                          else "**no**"])
    table(f"(c) near-duplicate decisions on the real HH rows ({real.num_rows:,})", ["threshold", "ours: dropped",
          "datasketch: dropped", "same (dropped, kept) pairs", "same decisions"], decisions)

    source = work / f"split-input-{rows}"
    if not (source / "prefdata.json").exists():
        build_input(source, rows)
    ours_near = dedup.near_duplicates

    def split_with(near) -> Callable[[], object]:
        def run() -> None:
            dedup.near_duplicates = near
            try:
                split_datasets([source], work / "split-out", near_dup=0.9, overwrite=True, quiet=True)
            finally:
                dedup.near_duplicates = ours_near
        return run

    split_with(ours_near)()  # warm-up outside the clock
    ours_s, lib_s = best_of(repeat, split_with(ours_near), split_with(datasketch_near_duplicates))
    everything = pa.concat_tables(pa.ipc.open_stream(p).read_all() for p in sorted(source.glob("train/*.arrow")))
    a, b = dedup.similar_pairs(everything, 0.9, rows=np.arange(everything.num_rows))
    ids = everything.column("id").combine_chunks()
    ours_uf, scipy_uf = best_of(repeat, lambda: union_find_keep_smallest_id(a, b, ids),
                                lambda: dedup.keep_smallest_id(a, b, ids))
    same = all(np.array_equal(x, y) for x, y in zip(union_find_keep_smallest_id(a, b, ids),
                                                    dedup.keep_smallest_id(a, b, ids)))
    table(f"(c) `prefdata split --near-dup 0.9` on {rows:,} replicated HH rows, best of {repeat}",
          ["measure", "ours", "library", "library / ours"],
          [["split wall s (library: datasketch + scipy)", f"{ours_s:.2f}", f"{lib_s:.2f}", f"{lib_s / ours_s:.2f}x"],
           [f"clustering {len(a):,} similar pairs, s (library: scipy connected_components)", f"{ours_uf:.3f}",
            f"{scipy_uf:.3f}", f"{scipy_uf / ours_uf:.2f}x"],
           ["  ... clustering as a share of our split time", f"{ours_uf / ours_s:.1%}", "",
            f"same decisions: {'yes' if same else '**no**'}"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("json", "state", "dedup"), action="append")
    parser.add_argument("--rows", type=int, default=50_000, help="records (json, state) or rows (dedup) per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prefdata-bench-infra"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    for part, run in (("json", bench_json), ("state", bench_state), ("dedup", bench_dedup)):
        if not args.only or part in args.only:
            run(args.workdir, args.rows, args.repeat)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_json":
        count_json(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_ijson_plain":
        ijson_plain(sys.argv[2])
    else:
        main()
