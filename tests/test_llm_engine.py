"""The engine against a real HTTP server through the real openai client: retries, limits, cache, cost cap."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import engine_config, numbered_requests

from prefdata.llm.accounting import BudgetExceeded
from prefdata.llm.batch import ordered_map
from prefdata.llm.cache import ResponseCache
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig, RequestFailed, RequestRejected
from prefdata.llm.pacing import Clock


def run_all(cfg: LLMConfig, requests: list[ChatRequest]):
    async def main():
        async with Engine(cfg) as engine:
            results = [r async for r in ordered_map(requests, engine.complete, window=8)]
            return results, engine

    return asyncio.run(main())


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def test_results_come_back_in_order_with_usage_and_are_cached(server, tmp_path):
    cfg = engine_config(server, tmp_path)
    results, engine = run_all(cfg, numbered_requests(cfg, 12))
    assert [r.text for r in results] == [f"echo: question number {i}" for i in range(12)]
    assert engine.accounting.requests == 12 and engine.accounting.tokens_in > 0
    assert all(r["body"]["model"] == "fake-model" and r["body"]["max_tokens"] == 16 for r in server.requests)
    again, engine2 = run_all(cfg, numbered_requests(cfg, 12))
    assert [r.text for r in again] == [r.text for r in results]
    assert engine2.accounting.cached == 12 and engine2.accounting.requests == 0
    assert len(server.requests) == 12


def test_429_retry_after_is_honoured(server, tmp_path):
    server.script = [{"status": 429, "retry_after": 1}]
    cfg = engine_config(server, tmp_path, concurrency=1)
    results, engine = run_all(cfg, numbered_requests(cfg, 1))
    assert results[0].text == "echo: question number 0"
    first, second = server.requests
    assert (first["status"], second["status"]) == (429, 200) and second["attempt"] == 1
    # On the server's clock: the retry arrived at least Retry-After after the 429 was written (the client's own
    # backoff would have come back after at most 0.5 s).
    assert second["t_start"] - first["t_reply"] >= 1.0
    assert engine.accounting.retries == 1


def test_500_and_malformed_json_are_retried(server, tmp_path):
    server.script = [{"status": 500, "retry_after_ms": 1}, {"malformed": True}, {"status": 503, "retry_after_ms": 1}]
    cfg = engine_config(server, tmp_path, concurrency=1)
    results, engine = run_all(cfg, numbered_requests(cfg, 2))
    assert [r.text for r in results] == ["echo: question number 0", "echo: question number 1"]
    assert [r["status"] for r in server.requests] == [500, 200, 503, 200, 200]
    assert engine.accounting.retries == 3 and engine.accounting.requests == 2


def test_a_hung_request_times_out_and_is_retried(server, tmp_path):
    server.script = [{"hang": 60}]
    cfg = engine_config(server, tmp_path, concurrency=1, timeout=0.3)
    results, engine = run_all(cfg, numbered_requests(cfg, 1))
    assert results[0].text == "echo: question number 0"
    hung, retry = server.requests
    assert hung["t_reply"] is None  # the client gave up on it: it has still not been answered
    assert retry["status"] == 200 and retry["attempt"] == 1 and engine.accounting.retries == 1
    assert retry["t_start"] - hung["t_start"] >= 0.3  # on the server's clock: not before --timeout


def test_a_hung_request_is_reported_as_a_timeout(server, tmp_path):
    server.script = [{"hang": 60}] * 3
    cfg = engine_config(server, tmp_path, concurrency=1, timeout=0.3, max_retries=1)
    with pytest.raises(RequestFailed, match=r"last: no reply within --timeout 0.3s"):
        run_all(cfg, numbered_requests(cfg, 1))


def test_a_refused_connection_is_reported_as_one_not_as_a_timeout(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = LLMConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", cache=str(tmp_path / "c.sqlite"),
                    max_retries=1, timeout=30)
    with pytest.raises(RequestFailed) as failed:
        run_all(cfg, numbered_requests(cfg, 1))
    message = str(failed.value)
    assert f"127.0.0.1:{port}" in message and "last: connection error: " in message and "timeout" not in message
    assert "\n" not in message


def test_retries_are_bounded_and_the_error_is_one_clear_line(server, tmp_path):
    server.script = [{"status": 500, "retry_after_ms": 1}] * 10
    cfg = engine_config(server, tmp_path, concurrency=1, max_retries=2)
    with pytest.raises(RequestFailed, match="last: HTTP 500") as failed:
        run_all(cfg, numbered_requests(cfg, 1))
    assert "\n" not in str(failed.value)
    assert [r["attempt"] for r in server.requests] == [0, 1, 2]
    server.script = [{"status": 500}] * 10
    cfg = engine_config(server, tmp_path, concurrency=1, max_retries=50, max_retry_time=0.2)
    with pytest.raises(RequestFailed, match="max-retry-time 0.2s"):
        run_all(cfg, numbered_requests(cfg, 1))
    assert len(server.requests) == 3 + 1  # the engine's first backoff (>= 0.375 s) outlasts --max-retry-time


def test_malformed_replies_are_asked_again_up_to_max_retries(server, tmp_path):
    server.script = [{"malformed": True}] * 5
    cfg = engine_config(server, tmp_path, concurrency=1, max_retries=2)
    with pytest.raises(RequestFailed, match="malformed reply"):
        run_all(cfg, numbered_requests(cfg, 1))
    assert len(server.requests) == 3


def test_auth_errors_stop_at_once_and_bad_requests_are_per_record(server, tmp_path):
    server.script = [{"status": 401}]
    cfg = engine_config(server, tmp_path)
    with pytest.raises(RequestFailed, match="OPENAI_API_KEY"):
        run_all(cfg, numbered_requests(cfg, 1))
    assert len(server.requests) == 1
    server.script = [{"status": 400}]
    with pytest.raises(RequestRejected):
        run_all(cfg, numbered_requests(cfg, 1))


class ManualClock:
    """Time that moves only when a pacer waits: the schedule the engine keeps, exact, whatever the machine's load."""

    def __init__(self) -> None:
        self.time = 0.0
        self.wakes: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Time moves when the sleep is asked for, as a real sleep's deadline is set then (not when it is awaited)."""
        wake = self.time + seconds
        self.wakes.append(wake)
        self.time = max(self.time, wake)
        return asyncio.sleep(0)

    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep)


def pacer_wakes(server: FakeOpenAI, tmp_path, requests: int, **settings) -> list[float]:
    """Send ``requests`` through an engine on a manual clock; the times at which its pacers let them go."""
    clock = ManualClock()
    cfg = engine_config(server, tmp_path, max_tokens=16, **settings)
    batch = [ChatRequest.of([{"role": "user", "content": "x" * 48}], cfg, seed=i) for i in range(requests)]

    async def main():
        async with Engine(cfg, clock=clock.clock()) as engine:
            return [r async for r in ordered_map(batch, engine.complete, window=8)]

    asyncio.run(main())
    assert len(server.completed()) == requests
    return clock.wakes


def test_rpm_limit_spaces_requests_evenly(server, tmp_path):
    # 120 rpm: one request per 0.5 s. The first goes at once, then evenly spaced: not a burst.
    assert pacer_wakes(server, tmp_path, 5, concurrency=8, rpm=120) == [0.5, 1.0, 1.5, 2.0]


def test_retries_take_their_own_turn_of_the_rpm_schedule(server, tmp_path):
    # Two of the five requests are told to retry at once (429, retry-after-ms 1): seven attempts, each one a turn.
    server.script = [{"status": 429, "retry_after_ms": 1}] * 2
    assert pacer_wakes(server, tmp_path, 5, concurrency=8, rpm=120) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_a_server_asking_for_too_long_a_wait_stops_the_run(server, tmp_path):
    server.script = [{"status": 429, "retry_after": 3600}]
    cfg = engine_config(server, tmp_path, concurrency=1)
    with pytest.raises(RequestFailed, match="HTTP 429"):
        run_all(cfg, numbered_requests(cfg, 3))
    assert len(server.requests) == 1


def test_tpm_limit_spaces_requests_by_their_reserved_tokens(server, tmp_path):
    # Each request reserves its prompt estimate (48 chars / 4 + 4 per message = 16) + max_tokens 16 = 32 tokens;
    # at 3,840 tpm a token takes 1/64 s of the schedule, so a request 0.5 s.
    assert pacer_wakes(server, tmp_path, 3, concurrency=4, tpm=3840) == [0.5, 1.0]


def test_tpm_charges_what_replies_really_use(server, tmp_path):
    # One at a time. The first request reserves 16 + max_tokens 16 = 32 tokens, then uses 12 prompt + 13 completion
    # (the server's usage): 25, so the second may go at 25/64 s. It reserves 16 + the 13 replies have cost so far,
    # uses 25 again, and the third goes at 50/64 s: each request holds the schedule for what it used.
    assert pacer_wakes(server, tmp_path, 3, concurrency=1, tpm=3840) == [25 / 64, 50 / 64]


def test_max_cost_is_a_hard_stop_and_completed_work_is_kept(server, tmp_path):
    # 1 currency unit per token in and out; each request reserves about 10 in + 16 out = 26.
    cfg = engine_config(server, tmp_path, concurrency=2, price_in=1_000_000, price_out=1_000_000, max_cost=100)
    with pytest.raises(BudgetExceeded, match="max-cost"):
        run_all(cfg, numbered_requests(cfg, 20))
    sent = len(server.requests)
    assert 1 <= sent < 20
    charged = [r for r in server.requests if r["status"] == 200]
    spent = sum(len(c) // 4 + len("echo: " + c) // 4 for c in (r["body"]["messages"][0]["content"] for r in charged))
    assert spent <= 100 and len(charged) == sent
    cache = ResponseCache(tmp_path / "cache.sqlite")
    assert len(cache) == sent  # every completed request was kept
    cache.close()
    cfg.max_cost = None
    results, engine = run_all(cfg, numbered_requests(cfg, 20))
    assert engine.accounting.cached == sent and engine.accounting.requests == 20 - sent
    assert len(server.requests) == 20


def test_check_refuses_nonsense_settings(tmp_path):
    from prefdata.contract.errors import PrefdataError

    with pytest.raises(PrefdataError, match="max-cost needs"):
        Engine(LLMConfig(model="m", cache="none", max_cost=1.0))
    with pytest.raises(PrefdataError, match="concurrency"):
        Engine(LLMConfig(model="m", cache="none", concurrency=0))


def test_the_fake_server_also_speaks_the_completions_endpoint(server):
    import openai

    async def main():
        client = openai.AsyncOpenAI(api_key="k", base_url=server.url, max_retries=0)
        try:
            return await client.completions.create(model="base", prompt="Once upon a time", max_tokens=4)
        finally:
            await client.close()

    reply = asyncio.run(main())
    assert reply.choices[0].text == "echo: Once upon a time" and reply.usage.prompt_tokens == 4
    assert server.requests[0]["path"] == "/v1/completions"


def test_requests_go_through_the_proxy_the_environment_names(server, tmp_path, monkeypatch):
    """HTTP(S)_PROXY is honoured under the aiohttp client as under the openai client's default one."""
    monkeypatch.setenv("HTTP_PROXY", server.url.split("/v1")[0])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    cfg = LLMConfig(model="m", base_url="http://llm.invalid/v1", cache=str(tmp_path / "c.sqlite"), max_retries=0)
    with pytest.raises(RequestFailed, match="HTTP 404"):  # the fake server is no proxy: it answers the URL with 404
        run_all(cfg, numbered_requests(cfg, 1))
    assert [r["path"] for r in server.requests] == ["http://llm.invalid/v1/chat/completions"]


def test_requests_carry_auth_and_content_headers_but_not_the_clients_platform_telemetry(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-header-check")
    cfg = engine_config(server, tmp_path, concurrency=1)
    run_all(cfg, numbered_requests(cfg, 1))
    (request,) = server.requests
    assert request["auth"] == "Bearer sk-test-header-check"
    names = set(request["header_names"])
    assert {"authorization", "content-type", "user-agent", "x-stainless-retry-count"} <= names
    assert not {"x-stainless-os", "x-stainless-arch", "x-stainless-runtime", "x-stainless-runtime-version",
                "x-stainless-lang", "x-stainless-package-version", "x-stainless-async"} & names


@pytest.mark.parametrize("suffix", ["", "/"])
def test_requests_reach_the_chat_completions_path_under_the_base_url(server, tmp_path, suffix):
    """The engine hands the client an absolute URL: the base URL's path is kept, with or without its last slash."""
    cfg = engine_config(server, tmp_path, base_url=server.url + suffix)
    results, _ = run_all(cfg, numbered_requests(cfg, 2))
    assert [r.text for r in results] == ["echo: question number 0", "echo: question number 1"]
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"] * 2
