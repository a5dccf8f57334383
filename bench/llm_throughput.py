"""LLM engine throughput: achieved requests/s against a 100 ms server, next to the ideal ``concurrency / latency``.

The fake OpenAI-compatible server (tests/fake_openai_server.py) runs in its own process so its CPU time is not
counted; the engine (real `openai.AsyncOpenAI` client, SQLite cache writes, accounting) runs here and its CPU time
per request is reported. Concurrency 1 is measured on fewer requests (2,000 at 100 ms would take 200 s). Baselines
in the same run: a bare asyncio client (the machine's ceiling) and the engine on the openai client's default HTTP
client (httpx2's pool) instead of its aiohttp one.

``--pacing`` measures the rate limiters instead: the engine's own pacer and the library candidate `aiolimiter`
(its leaky bucket put behind the same interface), each under an ``--rpm`` and a ``--tpm`` limit, at 64 in flight,
achieved requests/s next to the ideal the limit allows. The tpm case is a judge's load: ~100-token prompts,
``max_tokens`` 512 reserved, one-token replies (the server answers a score).

``--retry-pacing`` checks that retries keep to ``--rpm``: the server answers a random ``--error-rate`` of all attempts
with 429 (``retry-after-ms: 1``, so the client would retry at once), and the attempts it received per minute are
counted on its own clock, next to the limit.

    python bench/llm_throughput.py [--requests 2000] [--latency 0.1] [--serial-requests 100]
    python bench/llm_throughput.py --pacing [--requests 300] [--rate 60]
    python bench/llm_throughput.py --retry-pacing [--rpm 300] [--error-rate 0.2] [--paced-requests 100]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the fake server lives in tests/

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from fake_openai_server import FakeOpenAI, spawn  # noqa: E402

from prefdata.llm import engine as engine_module  # noqa: E402
from prefdata.llm.batch import ordered_map  # noqa: E402
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig  # noqa: E402
from prefdata.llm.wire import gated  # noqa: E402


async def measure(base_url: str, concurrency: int, requests: int, cache: Path, *, max_tokens: int = 16,
                  prompt: str = "benchmark request {i} at concurrency {concurrency}", **limits: float
                  ) -> tuple[float, float]:
    config = LLMConfig(model="bench", base_url=base_url, concurrency=concurrency, cache=str(cache),
                       max_tokens=max_tokens, **limits)
    batch = [ChatRequest.of([{"role": "user", "content": prompt.format(i=i, concurrency=concurrency)}], config)
             for i in range(requests)]
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


def httpx2_client(timeout: float, ssl_context, gate):
    """The openai client's default HTTP client (httpx2's own pool): the baseline of the engine's aiohttp client."""
    import openai

    return gated(openai.DefaultAsyncHttpxClient)(gate=gate, timeout=timeout, verify=ssl_context)


async def measure_with(client_factory, *args, **kwargs) -> tuple[float, float]:
    """`measure` with ``client_factory`` under the engine's openai clients instead of its own choice."""
    engine_choice = engine_module.http_client
    engine_module.http_client = client_factory
    try:
        return await measure(*args, **kwargs)
    finally:
        engine_module.http_client = engine_choice


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


class LeakyBucketPacer:
    """`aiolimiter.AsyncLimiter` behind the engine's pacer interface: a one-second bucket of ``per_minute / 60``.

    A leaky bucket cannot take back what a request reserved and did not use, nor charge an overrun after the fact,
    so ``settle`` does nothing and the engine's expected-reply estimate is all it gets.
    """

    def __init__(self, per_minute: float, clock: object = None) -> None:
        from aiolimiter import AsyncLimiter

        self._limiter = AsyncLimiter(per_minute / 60, 1.0)

    async def acquire(self, weight: float = 1.0) -> None:
        await self._limiter.acquire(weight)

    def settle(self, reserved: float, used: float) -> None:
        """Nothing to do: the bucket cannot correct what it charged."""


def pacing(args: argparse.Namespace) -> None:
    """Each limiter under an rpm and a tpm limit, at 64 in flight; the ideal is what the limit allows."""
    concurrency, rate = 64, args.rate
    prompt = "Rate this reply from 0 to 10. " + "The reply under review says something plain. " * 8 + "#{i}"
    server, base_url = spawn(args.latency, reply="score")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # One probe request gives the real tokens per request (prompt + one-token reply) for the tpm ideal.
            tokens = _tokens_per_request(base_url, prompt, Path(tmp) / "tokens.sqlite")
            cases = [("rpm", {"rpm": rate * 60}, rate), ("tpm", {"tpm": rate * tokens * 60}, rate)]
            limiters = [("prefdata Pacer", engine_module.Pacer)]
            if importlib.util.find_spec("aiolimiter"):
                limiters.append(("aiolimiter", LeakyBucketPacer))
            else:
                print("aiolimiter is not installed (pip install aiolimiter): measuring prefdata's Pacer only",
                      file=sys.stderr)
            for name, pacer in limiters:
                engine_module.Pacer = pacer
                for limit, settings, ideal in cases:
                    cache = Path(tmp) / f"{pacer.__name__}-{limit}.sqlite"
                    achieved, _ = asyncio.run(measure(base_url, concurrency, args.requests, cache, max_tokens=512,
                                                      prompt=prompt, **settings))
                    rows.append((name, limit, settings[limit], achieved, ideal))
                    print(f"{name} {limit}: {achieved:.1f} req/s of {ideal:.0f}", file=sys.stderr)
    finally:
        engine_module.Pacer = Pacer
        server.kill()
        server.wait()
    print(f"\nRate limiters at {concurrency} in flight, server latency {args.latency * 1000:.0f} ms, {args.requests:,} "
          f"requests each; {tokens} tokens used per request, max_tokens 512; {os.cpu_count()} CPUs, load average "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| limiter | limit | value | achieved req/s | ideal req/s | % of ideal |")
    print("|---|---|---:|---:|---:|---:|")
    for name, limit, value, achieved, ideal in rows:
        print(f"| {name} | {limit} | {value:,.0f} | {achieved:,.1f} | {ideal:,.0f} | {achieved / ideal:.0%} |")


def retry_pacing(args: argparse.Namespace) -> None:
    """Attempts per minute that reach the server under --rpm when a share of them is refused with 429."""
    chance = random.Random(0)
    refused = {"status": 429, "retry_after_ms": 1}
    with FakeOpenAI(latency=args.latency, rules=[(lambda body: chance.random() < args.error_rate, refused)]) as server:
        with tempfile.TemporaryDirectory() as tmp:
            config = LLMConfig(model="bench", base_url=server.url, concurrency=16, rpm=args.rpm, max_retries=20,
                               cache=str(Path(tmp) / "cache.sqlite"))
            batch = [ChatRequest.of([{"role": "user", "content": f"paced request {i}"}], config)
                     for i in range(args.paced_requests)]

            async def run() -> None:
                async with Engine(config) as engine:
                    async for _ in ordered_map(batch, engine.complete, window=64):
                        pass

            asyncio.run(run())
        arrivals = sorted(r["t_start"] for r in server.requests)
    per_minute = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) * 60
    refused_count = sum(r["status"] == 429 for r in server.requests)
    print("\n| --rpm | 429 share | requests | attempts (429s) | attempts/min on the server's clock | % of --rpm |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.rpm:g} | {args.error_rate:.0%} | {args.paced_requests} | {len(arrivals)} ({refused_count}) "
          f"| {per_minute:.0f} | {per_minute / args.rpm:.0%} |")


def _tokens_per_request(base_url: str, prompt: str, cache: Path) -> int:
    async def probe() -> int:
        config = LLMConfig(model="bench", base_url=base_url, cache=str(cache), max_tokens=512)
        async with Engine(config) as engine:
            await engine.complete(ChatRequest.of([{"role": "user", "content": prompt.format(i=0)}], config))
            return engine.accounting.tokens_in + engine.accounting.tokens_out

    return asyncio.run(probe())


Pacer = engine_module.Pacer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serial-requests", type=int, default=100, help="requests measured at concurrency 1")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--pacing", action="store_true", help="measure the rpm/tpm limiters instead")
    parser.add_argument("--rate", type=float, default=60.0,
                        help="--pacing: the limit in requests/s (kept well below what the CPU allows)")
    parser.add_argument("--retry-pacing", action="store_true", help="count attempts per minute under --rpm with 429s")
    parser.add_argument("--rpm", type=float, default=300.0, help="--retry-pacing: the limit")
    parser.add_argument("--error-rate", type=float, default=0.2, help="--retry-pacing: share of attempts refused")
    parser.add_argument("--paced-requests", type=int, default=100, help="--retry-pacing: requests sent")
    args = parser.parse_args()
    if args.pacing:
        pacing(args)
        return
    if args.retry_pacing:
        retry_pacing(args)
        return
    server, base_url = spawn(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                count = min(args.requests, args.serial_requests) if concurrency == 1 else args.requests
                raw = asyncio.run(measure_raw(base_url, concurrency, count))
                rate, cpu = asyncio.run(measure(base_url, concurrency, count, Path(tmp) / f"c{concurrency}.sqlite"))
                base, base_cpu = asyncio.run(measure_with(httpx2_client, base_url, concurrency, count,
                                                          Path(tmp) / f"h{concurrency}.sqlite"))
                ideal = concurrency / args.latency
                rows.append((concurrency, count, rate, ideal, raw, cpu * 1000, base, base_cpu * 1000))
                print(f"concurrency {concurrency}: {rate:.1f} req/s (raw client {raw:.1f}, httpx2 {base:.1f})",
                      file=sys.stderr)
    finally:
        server.kill()
        server.wait()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nLLM engine throughput, server latency {args.latency * 1000:.0f} ms (server in its own process); "
          f"{os.cpu_count()} CPUs, load average after the run {load}\n")
    print("| concurrency | requests | engine req/s | ideal req/s | engine % of ideal | bare asyncio client req/s "
          "| engine % of bare | engine CPU ms/request | baseline: engine on httpx2 req/s (% of ideal) "
          "| baseline CPU ms/request |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency, count, rate, ideal, raw, cpu_ms, base, base_cpu_ms in rows:
        print(f"| {concurrency} | {count:,} | {rate:,.1f} | {ideal:,.0f} | {rate / ideal:.0%} | {raw:,.1f} "
              f"| {rate / raw:.0%} | {cpu_ms:.2f} | {base:,.1f} ({base / ideal:.0%}) | {base_cpu_ms:.2f} |")


if __name__ == "__main__":
    main()
