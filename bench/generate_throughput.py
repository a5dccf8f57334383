"""`prefdata generate` throughput: requests/s for K answers per prompt at N in flight against a server with a fixed
latency, as a share of the ideal ``concurrency / latency``. Goal (issue #12): at least 85 % for K = 4 at 64 in flight
against a 100 ms server.

The fake OpenAI-compatible server (tests/fake_openai_server.py, ``--reply seeded``: each seed gives another answer)
runs in its own process, so its CPU is not counted. Six rows, each on a fresh cache:
- ``engine``: the bare engine over the same requests (`ordered_map` + `Engine.complete`), the floor of the job's cost;
- ``engine, collector left on`` (baseline): the same, without `prefdata.llm.collector` (Python's collector settings as
  they are), run right after it;
- ``engine, none beside the wire`` (baseline): the same, with no request in the client beyond the ``--concurrency``
  at the server (`prefdata.llm.wire`, ``BESIDE_THE_WIRE = 0``): the cap as it was counted before, around the whole
  openai call;
- ``generate``: the whole job function — reading the prompts' dataset, the requests, quarantine checks, rows, Arrow
  shards and the manifest — timed from the call to its return;
- ``generate, 2 policies``: the same prompts from two policies on two servers (two engines), K answers each;
- ``bare asyncio client`` (the ceiling): as many requests over plain keep-alive connections, no openai client, no
  cache (`bench/llm_throughput.py`'s `measure_raw`): what this machine and the fake server allow at all.

The last column is the time Python's garbage collector took during the row (`gc.callbacks`).

2,000 prompts by default (8,000 requests at K = 4), about the size of the bundled HH-RLHF test split (2,312 prompts):
a job of 500 prompts lasts ~3 s at the ideal rate, and its fixed part (reading the prompts, opening the engine, the
first requests all leaving together and the last ones coming back alone, writing the manifest: ~0.15-0.2 s) is then
5-8 % of it. ``--prompts 500`` measures that shorter job.

``--repeat N`` runs every row N times, in alternating order (this machine's speed drifts by up to ~10 points
between runs minutes apart), and reports each row's median and range.

    python bench/generate_throughput.py [--prompts 2000] [--k 4] [--concurrency 64] [--latency 0.1] [--repeat 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the fake server lives in tests/

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from unittest import mock  # noqa: E402

from fake_openai_server import spawn  # noqa: E402
from llm_throughput import measure_raw  # noqa: E402

from prefdata.contract.row import make_row  # noqa: E402
from prefdata.jobs.generate import _Job, generate, parse_policies, read_prompts  # noqa: E402
from prefdata.llm import engine as engine_module  # noqa: E402
from prefdata.llm.batch import ordered_map  # noqa: E402
from prefdata.llm.engine import Engine, LLMConfig  # noqa: E402
from prefdata.storage.dataset import DatasetWriter  # noqa: E402


def prompts_dir(path: Path, n: int) -> Path:
    with DatasetWriter(path, command="bench") as writer:
        for i in range(n):
            writer.count_in()
            writer.write(make_row([{"role": "user", "content": f"Benchmark question number {i}: why is it so?"}],
                                  source="bench"))
    return path


def config(url: str, concurrency: int, cache: Path) -> LLMConfig:
    return LLMConfig(model="policy", base_url=url, concurrency=concurrency, cache=str(cache), max_tokens=64)


async def engine_only(directory: Path, url: str, k: int, concurrency: int, cache: Path) -> tuple[int, float]:
    """The same requests `generate` sends, through the bare engine."""
    cfg = config(url, concurrency, cache)
    job = _Job(parse_policies(["policy"]), cfg.with_default_temperature(1.0), k, None, None, True)
    requests = [r for item in read_prompts(directory) for r in job.requests(item, job.policies[0])]
    async with Engine(cfg) as engine:
        start, cpu = time.perf_counter(), time.process_time()
        async for _ in ordered_map(requests, engine.complete, window=4 * concurrency):
            pass
        return len(requests), time.perf_counter() - start, time.process_time() - cpu


def run_generate(directory: Path, out: Path, models: list[str], k: int, cfg: LLMConfig) -> tuple[int, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    manifest = generate(directory, out, models=models, config=cfg, n_completions=k, quiet=True)
    return manifest["generate"]["answers_requested"], time.perf_counter() - start, time.process_time() - cpu


class CollectorClock:
    """Seconds Python's garbage collector ran since the last `take` (a `gc.callbacks` hook)."""

    def __init__(self) -> None:
        self.seconds, self._started = 0.0, 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every row this many times, in alternating order, and report medians")
    args = parser.parse_args()
    first, url = spawn(args.latency, "seeded")
    second, url2 = spawn(args.latency, "seeded")
    measured: dict[str, list[tuple]] = {}
    collector = CollectorClock()
    ideal = args.concurrency / args.latency
    try:
        with tempfile.TemporaryDirectory(prefix="prefdata-genbench-") as tmp:
            work = Path(tmp)
            directory = prompts_dir(work / "prompts", args.prompts)
            # warm both servers' listeners and this process's imports on a few prompts first
            run_generate(prompts_dir(work / "warm", 8), work / "warm-out", ["policy"], args.k,
                         config(url, args.concurrency, work / "warm.sqlite"))
            collector.take()

            def engine_row(setting):
                def run(tag: str):
                    with setting:
                        return asyncio.run(engine_only(directory, url, args.k, args.concurrency,
                                                       work / f"engine-{tag}.sqlite"))
                return run

            def generate_row(models: list[str]):
                def run(tag: str):
                    return run_generate(directory, work / f"out-{tag}", models, args.k,
                                        config(url, args.concurrency, work / f"cache-{tag}.sqlite"))
                return run

            def bare_row(tag: str):
                requests, start, cpu = args.prompts * args.k, time.perf_counter(), time.process_time()
                asyncio.run(measure_raw(url, args.concurrency, requests))
                return requests, time.perf_counter() - start, time.process_time() - cpu

            rows = [
                ("engine", 1, engine_row(contextlib.nullcontext())),
                ("engine, collector left on (baseline)", 1, engine_row(
                    mock.patch.object(engine_module, "collector_out_of_the_way", contextlib.nullcontext))),
                ("engine, none beside the wire (baseline)", 1,
                 engine_row(mock.patch.object(engine_module, "BESIDE_THE_WIRE", 0))),
                ("generate", 1, generate_row(["policy"])),
                ("generate, 2 policies", 2, generate_row([f"a={url}", f"b={url2}"])),
                ("bare asyncio client (ceiling)", 1, bare_row),
            ]
            for run in range(args.repeat):
                for number, (name, servers, measure) in enumerate(rows if run % 2 == 0 else rows[::-1]):
                    result = measure(f"{run}-{number}")
                    measured.setdefault(name, []).append((servers, *result, collector.take()))
    finally:
        first.kill()
        second.kill()
    print(f"K = {args.k}, {args.prompts} prompts, {args.concurrency} in flight per server, "
          f"{args.latency * 1000:g} ms per request" + (f"; medians of {args.repeat} runs in alternating order"
                                                      if args.repeat > 1 else "") + "\n")
    print("| path | servers | requests | wall s | req/s | ideal req/s | % of ideal | range | CPU ms/request "
          "| collector s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name, runs in measured.items():
        servers, requests = runs[0][0], runs[0][1]
        row_ideal = servers * ideal
        shares = [r[1] / r[2] / row_ideal for r in runs]
        wall = statistics.median(r[2] for r in runs)
        cpu = statistics.median(1000 * r[3] / r[1] for r in runs)
        collected = statistics.median(r[4] for r in runs)
        spread = f"{min(shares):.0%}–{max(shares):.0%}" if len(runs) > 1 else ""
        print(f"| {name} | {servers} | {requests:,} | {wall:.2f} | {requests / wall:,.1f} | {row_ideal:,.0f} | "
              f"{statistics.median(shares):.0%} | {spread} | {cpu:.2f} | {collected:.3f} |")
    print(f"\nload average over the last minute: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
