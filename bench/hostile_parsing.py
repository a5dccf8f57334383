"""Hostile parsing cases (issue #10, classes 3 and 6), each a whole `prefdata` process, counted by outcome.

Each case is judged from outside, as a user sees it: ``crash`` (killed by a signal: exit 139 is SIGSEGV),
``traceback`` (a Python traceback on stderr), ``silent`` (exit 0 with a wrong result: a column dropped, a record over
``--max-record-bytes`` imported, a directory `validate` rejects, a nonsense option accepted, a wrong message), or ``ok``
(a one-line error with a non-zero exit, or a correct result). ``--compare OTHER_CHECKOUT`` runs the same cases there.

Run:  python bench/hostile_parsing.py [--compare /work/old]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
PAIR = {"prompt": "Is it cold?", "chosen": "Take a coat.", "rejected": "Who cares."}
HH = {"chosen": "\n\nHuman: Is it cold?\n\nAssistant: Take a coat.",
      "rejected": "\n\nHuman: Is it cold?\n\nAssistant: Who cares."}
DEEP = "[" * 100_000 + "]" * 100_000
Judge = Callable[[subprocess.CompletedProcess, Path], bool]  # True when the outcome is right


def deep_line(record: dict) -> str:
    return json.dumps({**record, "chosen": None}).replace("null", DEEP)


def one_line_error(done: subprocess.CompletedProcess, _: Path) -> bool:
    return done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1


def exit_ok(done: subprocess.CompletedProcess, _: Path) -> bool:
    return done.returncode in (0, 1)  # validate: 1 means "findings reported"


def quarantined(reason: str, rows: int) -> Judge:
    def judge(done: subprocess.CompletedProcess, out: Path) -> bool:
        if done.returncode != 0 or not (out / "prefdata.json").is_file():
            return False
        manifest = json.loads((out / "prefdata.json").read_text())
        return manifest["counts"]["rows_out"] == rows and reason in manifest["counts"]["quarantined_by_reason"]
    return judge


def refused_with(text: str) -> Judge:
    return lambda done, out: one_line_error(done, out) and text in done.stderr


def make_inputs(work: Path) -> dict[str, Path]:
    files = {}

    def put(name: str, text: str) -> None:
        files[name] = work / name
        files[name].write_text(text)

    put("deep.jsonl", json.dumps(PAIR) + "\n" + deep_line(PAIR) + "\n")
    put("deep.json", "[" + json.dumps(PAIR) + "," + deep_line(PAIR) + "]")
    put("deep.csv", 'prompt,chosen,rejected\n"[{""role"": ""user"", ""content"": ' + DEEP + '}]",a,b\n')
    put("templates.json", '{"a": ' + DEEP + "}")
    put("schema.json", '{"a": ' + DEEP + "}")
    put("pairs.jsonl", json.dumps(PAIR) + "\n" + json.dumps(PAIR | {"chosen": "No."}) + "\n")
    put("dup.csv", "prompt,chosen,chosen,rejected\nq,a,b,c\n")
    big = [PAIR, PAIR | {"chosen": "x" * 5000}]
    put("big.json", json.dumps(big))
    put("big.csv", "prompt,chosen,rejected\n" + "".join(f"{r['prompt']},{r['chosen']},{r['rejected']}\n" for r in big))
    files["big.parquet"] = work / "big.parquet"
    pq.write_table(pa.Table.from_pylist(big), files["big.parquet"])
    hub = work / "hub" / "harmless-base" / "test.jsonl.gz"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(gzip.compress((json.dumps(HH) + "\n" + deep_line(HH) + "\n").encode()))
    files["hub"] = work / "hub"
    files["fifo.jsonl"] = work / "fifo.jsonl"
    os.mkfifo(files["fifo.jsonl"])
    files["loop.jsonl"] = work / "loop.jsonl"
    files["loop.jsonl"].symlink_to(files["loop.jsonl"])
    clean = work / "clean.parquet"
    pq.write_table(pa.Table.from_pylist([PAIR | {"chosen": f"Answer {i}."} for i in range(2000)]), clean)
    data = clean.read_bytes()
    for n, offset in enumerate(range(64, len(data) - 64, (len(data) - 128) // 20)):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        files[f"flip{n}.parquet"] = work / f"flip{n}.parquet"
        files[f"flip{n}.parquet"].write_bytes(bytes(damaged))
    return files


def cases(files: dict[str, Path], work: Path, dataset: Path, server_url: str) -> list[tuple[str, list, Judge]]:
    imp = ["import", "--out", "{out}", "-q"]
    llm = ["--model", "m", "--base-url", server_url, "--cache", str(work / "c.sqlite"), "--out", "{out}", "-q"]
    deep_manifest = work / "deep_manifest"
    deep_quarantine = work / "deep_quarantine"
    listed = [
        ("import JSONL nested 100,000 deep", imp + [files["deep.jsonl"], "--format", "trl-standard"],
         quarantined("too_deep", 1)),
        ("import JSON array nested 100,000 deep", imp + [files["deep.json"], "--format", "trl-standard"],
         quarantined("too_deep", 1)),
        ("import CSV cell nested 100,000 deep", imp + [files["deep.csv"], "--format", "trl-conversational"],
         quarantined("too_deep", 0)),
        ("validate JSONL nested 100,000 deep", ["validate", files["deep.jsonl"]], exit_ok),
        ("validate templates.json nested deep", ["validate", files["templates.json"]], one_line_error),
        ("validate --schema FILE nested deep", ["validate", files["pairs.jsonl"], "--schema", files["schema.json"]],
         one_line_error),
        ("validate DIR, manifest nested deep", ["validate", deep_manifest], exit_ok),
        ("validate DIR, quarantine line nested deep", ["validate", deep_quarantine], exit_ok),
        ("synthesize --seeds nested deep", ["synthesize", "--kind", "rlhf", "--seeds", files["deep.jsonl"], "--n", "2",
                                            "--model", "m", "--dry-run", "--out", "{out}"], exit_ok),
        ("download hh-rlhf, a line nested deep", ["download", "hh-rlhf", "--from", files["hub"], "--out", "{out}", "-q"],
         quarantined("too_deep", 1)),
        ("import CSV header prompt,chosen,chosen,rejected", imp + [files["dup.csv"]], refused_with("twice")),
        *[(f"import --max-record-bytes 1000, {kind}", imp + [files[f"big.{kind}"], "--format", "trl-standard",
                                                             "--max-record-bytes", "1000"],
           quarantined("record_too_large", 1)) for kind in ("json", "csv", "parquet")],
        ("score, every row quarantined", ["score", dataset, *llm], "validate"),
        ("synthesize, every candidate quarantined", ["synthesize", "--kind", "rlhf", "--seeds", files["pairs.jsonl"],
                                                     "--n", "2", *llm], "validate"),
        *[(f"score --score-range {r}", ["score", dataset, "--model", "m", "--dry-run", "--score-range", r, "--out",
                                        "{out}"], refused_with("--score-range")) for r in ("nan,10", "0,inf")],
        ("import a FIFO", imp + [files["fifo.jsonl"]], refused_with("FIFO")),
        ("import /dev/stdin (a pipe)", imp + ["/dev/stdin"], refused_with("FIFO")),
        ("import a symlink loop", imp + [files["loop.jsonl"]], refused_with("symbolic links")),
    ]
    flips = [(f"import bit-flipped Parquet #{name[4:-8]}", imp + [path, "--format", "trl-standard"],
              lambda done, out: done.returncode == 0 or one_line_error(done, out))
             for name, path in files.items() if name.startswith("flip")]
    return listed + flips


def outcome(done: subprocess.CompletedProcess, out: Path, judge, code: Path | None) -> str:
    if done.returncode < 0 or done.returncode >= 128:
        return "crash"
    if "Traceback" in done.stderr:
        return "traceback"
    if judge == "validate":
        if done.returncode != 0:
            return "ok" if len(done.stderr.strip().splitlines()) == 1 else "silent"
        check = run(["validate", out], code)
        return "ok" if check.returncode == 0 else "silent"
    return "ok" if judge(done, out) else "silent"


def run(argv: list, code: Path | None, out: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code or ROOT), "HF_HUB_OFFLINE": "1"}
    args = [str(out) if a == "{out}" else str(a) for a in argv]
    # cwd: `python -m` puts the working directory first on the path, ahead of PYTHONPATH.
    return subprocess.run([sys.executable, "-m", "prefdata.cli", *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.PIPE if "/dev/stdin" in args else subprocess.DEVNULL, timeout=300,
                          cwd=code or ROOT)


def main() -> None:
    from fake_openai_server import FakeOpenAI
    from support import write_dataset

    from prefdata.contract.row import make_row

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout to run the same cases with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(reply=lambda body: "?") as server:
        work = Path(tmp)
        files = make_inputs(work)
        rows = [make_row([{"role": "user", "content": f"Question {i}?"}], f"Good {i}.", f"Bad {i}.", source="t")
                for i in range(3)]
        dataset = write_dataset(work / "dataset", rows)
        for name in ("deep_manifest", "deep_quarantine"):
            write_dataset(work / name, rows)
        (work / "deep_manifest" / "prefdata.json").write_text('{"a": ' + DEEP + "}")
        (work / "deep_quarantine" / "quarantine.jsonl").write_text('{"a": ' + DEEP + "}\n")
        checkouts = {"after": None, **({"before": args.compare} if args.compare else {})}
        totals = {name: Counter() for name in checkouts}
        print("| case | " + " | ".join(checkouts) + " |\n|---|" + "---|" * len(checkouts))
        for n, (title, argv, judge) in enumerate(cases(files, work, dataset, server.url)):
            results = []
            for name, code in checkouts.items():
                out = work / f"out-{name}-{n}"
                result = outcome(run(argv, code, out), out, judge, code)
                totals[name][result] += 1
                results.append(result)
            print(f"| {title} | " + " | ".join(results) + " |", flush=True)
        for name, counts in totals.items():
            print(f"{name}: " + ", ".join(f"{kind} {counts[kind]}" for kind in ("crash", "traceback", "silent", "ok")))


if __name__ == "__main__":
    main()
