"""--concurrency counts requests at the server (the wire gate), with a few more being built beside them; a failure
that stops the run lets no request waiting at the gate through, and a retried or refused request gives its place back.
"""

from __future__ import annotations

import asyncio
import ssl
from unittest import mock

import httpx2._urls
import pytest
from fake_openai_server import FakeOpenAI
from llm_support import engine_config, numbered_requests

from prefdata.llm.batch import ordered_map
from prefdata.llm.engine import Engine, LLMConfig, RequestFailed


async def within(results, limit: float = 20.0) -> list:
    """``results`` (an async iterator) collected; a run that does not end within ``limit`` seconds fails (a place at
    the server never given back).

    Not `asyncio.wait_for`: cancelling the run waits for the requests under way, which a lost place keeps waiting;
    `asyncio.run` cancels every task on the way out, the stuck ones included.
    """

    async def collect() -> list:
        return [r async for r in results]

    task = asyncio.ensure_future(collect())
    done, _ = await asyncio.wait({task}, timeout=limit)
    assert done, f"the run did not end within {limit:g}s: a place at the server was never given back"
    return task.result()


def run(cfg: LLMConfig, count: int) -> tuple[list, Engine]:
    async def main():
        async with Engine(cfg) as engine:
            return await within(ordered_map(numbered_requests(cfg, count), engine.complete, window=64)), engine

    return asyncio.run(main())


def most_at_once(server: FakeOpenAI) -> int:
    """The most requests the server held at once, on its own clock (arrival to answer written)."""
    events = sorted([(r["t_start"], 1) for r in server.requests] + [(r["t_end"], -1) for r in server.requests])
    most = busy = 0
    for _, step in events:
        busy += step
        most = max(most, busy)
    return most


def test_the_server_holds_at_most_concurrency_while_more_are_built_beside_them(tmp_path):
    with FakeOpenAI(latency=0.05) as server:
        cfg = engine_config(server, tmp_path, concurrency=4)
        results, engine = run(cfg, 40)
    assert len(results) == 40 and len(server.requests) == 40
    assert most_at_once(server) <= 4
    assert engine.wire.most == 4  # the cap was reached, never passed
    assert engine.places_in_client == 5  # a quarter more (rounded up) may be in the client, being built or read


@pytest.mark.parametrize("limit", [{"rpm": 6000}, {"tpm": 10**6}])
def test_under_a_rate_limit_no_request_waits_in_the_client_past_its_turn(tmp_path, limit):
    # A request takes its --rpm/--tpm turn when it enters the client: none may enter beyond the places at the server.
    cfg = LLMConfig(model="m", cache="none", concurrency=8, **limit)
    assert Engine(cfg).places_in_client == 8
    assert Engine(LLMConfig(model="m", cache="none", concurrency=8)).places_in_client == 10


def test_a_failure_that_stops_the_run_lets_no_waiting_request_through(tmp_path):
    # Two places at the server, one more request built and waiting for a place: both exchanges fail for good (401),
    # and the place the first gives back is not taken by the waiting request.
    with FakeOpenAI(latency=0.05, rules=[(lambda body: True, {"status": 401})]) as server:
        cfg = engine_config(server, tmp_path, concurrency=2)
        with pytest.raises(RequestFailed, match="HTTP 401"):
            run(cfg, 12)
    assert len(server.requests) == 2


def test_a_timed_out_request_that_stops_the_run_lets_no_waiting_request_through(tmp_path):
    with FakeOpenAI(script=[{"hang": 3}]) as server:
        cfg = engine_config(server, tmp_path, concurrency=1, timeout=0.3, max_retries=0)
        with pytest.raises(RequestFailed, match="no reply within --timeout"):
            run(cfg, 5)
    assert len(server.requests) == 1


def test_a_retried_request_gives_its_place_back_before_it_asks_again(tmp_path):
    # One place at the server: a request answered 500 asks again through the same single place; were the failed
    # exchange's place kept until the request ended, its own retry could never be sent.
    with FakeOpenAI(script=[{"status": 500, "retry_after_ms": 1}, {"status": 429, "retry_after_ms": 1}]) as server:
        cfg = engine_config(server, tmp_path, concurrency=1)
        results, engine = run(cfg, 4)
    assert [r.text for r in results] == [f"echo: question number {i}" for i in range(4)]
    assert len(server.requests) == 6 and engine.accounting.retries == 2


def test_a_refused_request_gives_its_place_back(tmp_path):
    # HTTP 400 refuses one record; the run goes on through the same single place.
    with FakeOpenAI(script=[{"status": 400}] * 3) as server:
        cfg = engine_config(server, tmp_path, concurrency=1)

        async def main():
            async with Engine(cfg) as engine:
                async def ask(request):
                    try:
                        return (await engine.complete(request)).text
                    except Exception as e:  # noqa: BLE001 - the test reads which requests were refused
                        return type(e).__name__

                return await within(ordered_map(numbered_requests(cfg, 6), ask, window=8))

        answers = asyncio.run(main())
    assert answers == ["RequestRejected"] * 3 + [f"echo: question number {i}" for i in range(3, 6)]


def test_a_client_parses_the_url_it_sends_to_once(tmp_path):
    """The openai client hands each request's URL to the HTTP client as a string; parsing it again for every request
    cost ~3 % of the engine's CPU per request at 64 in flight."""
    from prefdata.llm.wire import WireGate, http_client

    parsed = []
    real = httpx2._urls.urlparse

    def counting(*args, **kwargs):
        parsed.append(args)
        return real(*args, **kwargs)

    async def build(count: int):
        client = http_client(5.0, ssl.create_default_context(), WireGate(1, lambda: None))
        try:
            with mock.patch.object(httpx2._urls, "urlparse", counting):
                return [client.build_request("POST", "http://127.0.0.1:9/v1/chat/completions", content=b"{}")
                        for _ in range(count)]
        finally:
            await client.aclose()

    requests = asyncio.run(build(5))
    assert len(parsed) == 1
    assert [str(r.url) for r in requests] == ["http://127.0.0.1:9/v1/chat/completions"] * 5
    assert all(r.method == "POST" and r.content == b"{}" for r in requests)
