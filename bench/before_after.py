"""Each benchmark of `bench/`, run on an older checkout and on this one, interleaved, in one run on one machine.

"No benchmark gets slower by more than 5%" can only be judged this way: these machines are noisy, so the two sides
alternate (before, after, before, after, …) and the best CPU time of each side is compared. Every run's own table is
kept in the report, so the ratios each benchmark measures against its own baseline can be compared as well.

    git worktree add /tmp/before <ref>
    python bench/before_after.py --before /tmp/before --repeat 3 --out bench/_work/before_after.md
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name: the command's arguments after `python bench/<name>.py`; sized to finish in about a minute each on 2 cores.
BENCHES = {
    "import_hh": ["--rows", "100000", "--rss-rows", "", "--repeat", "1"],
    "bench_import": ["--copies", "5", "--repeat", "1"],
    "validate_bench": ["--records", "30000"],
    "split": ["--rows", "200000", "--workdir", "{work}/split"],
    "llm_throughput": ["--requests", "600", "--serial-requests", "30", "--concurrency", "1,16,64"],
    "tokenize_cache": ["--rows", "3000", "--open-rows", "20000", "--repeat", "1", "--workdir", "{work}/tok"],
}


def run_once(tree: Path, name: str, args: list[str], work: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout) for one run of one benchmark in ``tree``."""
    argv = [sys.executable, str(tree / "bench" / f"{name}.py"), *(a.format(work=work) for a in args)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed in {tree}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the older version")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmark names")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per side; the best is kept")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "_work" / "before_after")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    options = parser.parse_args()
    sides = {"before": options.before.resolve(), "after": REPO}
    lines = ["| benchmark | best wall before | best wall after | best CPU before | best CPU after | CPU after/before |",
             "|---|---|---|---|---|---|"]
    tables: list[str] = []
    for name in [n for n in options.only.split(",") if n]:
        best: dict[str, tuple[float, float]] = {}
        for attempt in range(options.repeat):
            for side, tree in sides.items():
                work = options.work / side
                work.mkdir(parents=True, exist_ok=True)
                wall, cpu, stdout = run_once(tree, name, BENCHES[name], work)
                old = best.get(side, (float("inf"), float("inf")))
                best[side] = (min(old[0], wall), min(old[1], cpu))
                tables.append(f"### {name}, {side}, run {attempt + 1}\n\n{stdout.strip()}\n")
                print(f"{name} {side} run {attempt + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
        (wb, cb), (wa, ca) = best["before"], best["after"]
        lines.append(f"| {name} | {wb:.1f} s | {wa:.1f} s | {cb:.1f} s | {ca:.1f} s | {ca / cb:.3f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(report + "\n" + "\n".join(tables), encoding="utf-8")


if __name__ == "__main__":
    main()
