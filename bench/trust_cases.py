"""Issue #10: the hostile cases of the storage verbs, run through the real CLI, counted by outcome.

Each case runs `python -m prefdata` from a source tree (``--tree``, default this one; point it at an older checkout to
get the "before" figures) and is classed as: ok (refused with one line, or a correct result), traceback, crash (killed
by a signal it was not sent), silent (exit 0 where it must refuse, or a second writer that succeeds) and leftovers
(hidden ``.OUT.tmp-*`` / ``.OUT.old-*`` siblings still there after the run, or after the next run for SIGKILL).

    python bench/trust_cases.py                      # this tree
    python bench/trust_cases.py --tree ../../main    # before
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import trust_support  # noqa: E402  (the tests' helpers: the CLI in a subprocess, paused at a chosen point)

DAMAGES = ("flipped byte", "truncated shard", "deleted shard", "edited rows_out", "edited records_in")


def damage(directory: Path, kind: str) -> None:
    import json

    shard = next((directory / "train").glob("data-*.arrow"))
    if kind == "flipped byte":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 1
        shard.write_bytes(bytes(data))
    elif kind == "truncated shard":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif kind == "deleted shard":
        shard.unlink()
    else:
        manifest = json.loads((directory / "prefdata.json").read_text())
        manifest["counts"][kind.split()[1]] += 1
        (directory / "prefdata.json").write_text(json.dumps(manifest))


def classify(code: int | None, err: str, *, must_refuse: bool, left: list[str], sent: int | None = None) -> str:
    if "Traceback" in err:
        return "traceback"
    if code is not None and (code < 0 or code >= 128) and code not in (-(sent or 0), 128 + (sent or 0), 130):
        return "crash"
    if must_refuse and code == 0:
        return "silent"
    if left:
        return "leftovers"
    return "ok"


def command(verb: str, source: Path, out: Path) -> list:
    if verb == "import":
        return ["import", source.parent / "in.jsonl", "--out", out, "--quiet"]
    if verb == "split":
        return ["split", source, "--out", out, "--quiet"]
    if verb == "export":
        return ["export", source, "--out", out, "--format", "trl", "--quiet"]
    return ["stats", source]


def hidden(folder: Path, name: str) -> list[str]:
    return [n for n in trust_support.leftovers(folder, name) if ".tmp-" in n or ".old-" in n]


def run_cases(work: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    trust_support.write_jsonl(work / "in.jsonl", 60)
    clean = work / "clean"
    assert trust_support.cli("import", work / "in.jsonl", "--out", clean, "--quiet").returncode == 0
    for kind in DAMAGES:
        for verb in ("split", "export", "stats"):
            case = work / f"case-{len(results)}"
            case.mkdir()
            shutil.copytree(clean, case / "d")
            damage(case / "d", kind)
            done = trust_support.cli(*command(verb, case / "d", case / "out"))
            left = [str(p) for p in case.iterdir() if p.name != "d"]
            results[f"{verb}: {kind}"] = classify(done.returncode, done.stderr, must_refuse=True, left=left)
    (work / "a-file").write_text("x")
    outs = {"--out under a regular file": work / "a-file" / "out", "--out under /proc": Path("/proc/prefdata-x"),
            "--out name of 300 bytes": work / ("x" * 300), "--out name of 250 bytes": work / ("y" * 250)}
    for label, out in outs.items():
        for verb in ("import", "split", "export"):
            before = set(work.iterdir())
            done = trust_support.cli(*command(verb, clean, out))
            left = [str(p) for p in set(work.iterdir()) - before]
            results[f"{verb}: {label}"] = classify(done.returncode, done.stderr, must_refuse=True, left=left)
    for verb in ("import", "split", "export"):
        case = work / f"disk-{verb}"
        case.mkdir()
        done = trust_support.cli(*command(verb, clean, case / "out"), preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_FSIZE, (4096, 4096)))
        results[f"{verb}: full disk (ulimit -f)"] = classify(done.returncode, done.stderr, must_refuse=True,
                                                             left=hidden(case, "out"))
    pauses = {"import": ("prefdata.storage.dataset", "DatasetWriter.split"),
              "split": ("prefdata.storage.dataset", "DatasetWriter.split"), "export": ("prefdata.jobs.export", "_convert")}
    for verb in ("import", "export"):
        case = work / f"two-{verb}"
        case.mkdir()
        first = trust_support.start_paused(*pauses[verb], *command(verb, clean, case / "out"))
        second = trust_support.cli(*command(verb, clean, case / "out"))
        trust_support.resume(first)
        results[f"{verb}: two writers, one --out"] = classify(second.returncode, second.stderr, must_refuse=True,
                                                              left=hidden(case, "out"))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        for verb in ("import", "split", "export"):
            case = work / f"sig-{signum}-{verb}"
            case.mkdir()
            process = trust_support.start_paused(*pauses[verb], *command(verb, clean, case / "out"))
            process.send_signal(signum)
            code, _, err = trust_support.resume(process)
            if signum == signal.SIGKILL:  # the next run on the same --out must clear what the killed one left
                done = trust_support.cli(*command(verb, clean, case / "out"))
                code, err = done.returncode, err + done.stderr
            results[f"{verb}: {signal.Signals(signum).name} mid-run"] = classify(
                code, err, must_refuse=False, left=hidden(case, "out"), sent=signum)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=trust_support.REPO, help="Source tree whose prefdata to run.")
    parser.add_argument("--verbose", action="store_true", help="Print every case with its outcome.")
    args = parser.parse_args()
    trust_support.REPO = args.tree.resolve()
    with tempfile.TemporaryDirectory(prefix="prefdata-trust-") as folder:
        results = run_cases(Path(folder))
    if args.verbose:
        for case, outcome in results.items():
            print(f"{outcome:<10} {case}")
    counts = Counter(results.values())
    print(f"{len(results)} cases ({args.tree}): " + ", ".join(
        f"{outcome} {counts.get(outcome, 0)}" for outcome in ("ok", "traceback", "crash", "silent", "leftovers")))
    sys.exit(0 if counts.get("ok", 0) == len(results) else 1)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
