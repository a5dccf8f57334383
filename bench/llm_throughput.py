"""LLM engine throughput: achieved requests/s against a 100 ms server, next to the ideal ``concurrency / latency``.

The fake OpenAI-compatible server (tests/fake_openai_server.py) runs in its own process so its CPU time is not
counted; the engine (real `openai.AsyncOpenAI` client, SQLite cache writes, accounting) runs here and its CPU time
per request is reported. Concurrency 1 is measured on fewer requests (2,000 at 100 ms would take 200 s).

    python bench/llm_throughput.py [--requests 2000] [--latency 0.1] [--serial-requests 100]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the fake server lives in tests/

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from fake_openai_server import spawn  # noqa: E402

from prefdata.llm.batch import ordered_map  # noqa: E402
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig  # noqa: E402


async def measure(base_url: str, concurrency: int, requests: int, cache: Path) -> tuple[float, float]:
    config = LLMConfig(model="bench", base_url=base_url, concurrency=concurrency, cache=str(cache), max_tokens=16)
    batch = [ChatRequest.of([{"role": "user", "content": f"benchmark request {i} at concurrency {concurrency}"}],
                            config) for i in range(requests)]
    async with Engine(config) as engine:
        warm = [ChatRequest.of([{"role": "user", "content": f"warm-up {i}"}], config) for i in range(concurrency)]
        async for _ in ordered_map(warm, engine.complete, window=4 * concurrency):
            pass  # open the connection pool before the clock starts
        cpu, wall = time.process_time(), time.perf_counter()
        done = 0
        async for _ in ordered_map(batch, engine.complete, window=4 * concurrency):
            done += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert done == requests and engine.accounting.requests == requests + concurrency
    return requests / wall, cpu / requests


async def measure_raw(base_url: str, concurrency: int, requests: int) -> float:
    """The ceiling of this machine: bare asyncio keep-alive connections, no openai/httpx, no cache, no accounting."""
    host, port = base_url.split("//")[1].split("/")[0].split(":")
    remaining = list(range(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while remaining:
            i = remaining.pop()
            body = json.dumps({"model": "raw", "messages": [{"role": "user", "content": f"raw request {i}"}]}).encode()
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
            json.loads(await reader.readexactly(length))
        writer.close()

    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serial-requests", type=int, default=100, help="requests measured at concurrency 1")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", default="1,16,64,256")
    args = parser.parse_args()
    server, base_url = spawn(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                count = min(args.requests, args.serial_requests) if concurrency == 1 else args.requests
                raw = asyncio.run(measure_raw(base_url, concurrency, count))
                rate, cpu = asyncio.run(measure(base_url, concurrency, count, Path(tmp) / f"c{concurrency}.sqlite"))
                ideal = concurrency / args.latency
                rows.append((concurrency, count, rate, ideal, raw, cpu * 1000))
                print(f"concurrency {concurrency}: {rate:.1f} req/s (raw client {raw:.1f})", file=sys.stderr)
    finally:
        server.kill()
        server.wait()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nLLM engine throughput, server latency {args.latency * 1000:.0f} ms (server in its own process); "
          f"{os.cpu_count()} CPUs, load average after the run {load}\n")
    print("| concurrency | requests | engine req/s | ideal req/s | engine % of ideal | bare asyncio client req/s "
          "| engine % of bare | engine CPU ms/request |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency, count, rate, ideal, raw, cpu_ms in rows:
        print(f"| {concurrency} | {count:,} | {rate:,.1f} | {ideal:,.0f} | {rate / ideal:.0%} | {raw:,.1f} "
              f"| {rate / raw:.0%} | {cpu_ms:.2f} |")


if __name__ == "__main__":
    main()
