"""The engine against a real HTTP server through the real openai client: retries, limits, cache, cost cap."""

from __future__ import annotations

import asyncio

import pytest
from fake_openai_server import FakeOpenAI

from prefdata.llm.accounting import BudgetExceeded
from prefdata.llm.batch import ordered_map
from prefdata.llm.cache import ResponseCache
from prefdata.llm.engine import (
    ChatRequest,
    Engine,
    LLMConfig,
    RequestFailed,
    RequestRejected,
    retry_after_seconds,
)


def config(server: FakeOpenAI, tmp_path, **overrides) -> LLMConfig:
    settings = {"model": "fake-model", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"),
                "timeout": 5.0, "max_retries": 3, "concurrency": 4, "max_tokens": 16,
                "backoff_base": 0.02}
    settings.update(overrides)
    return LLMConfig(**settings)


def requests_for(cfg: LLMConfig, count: int) -> list[ChatRequest]:
    return [ChatRequest.of([{"role": "user", "content": f"question number {i}"}], cfg) for i in range(count)]


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
    cfg = config(server, tmp_path)
    results, engine = run_all(cfg, requests_for(cfg, 12))
    assert [r.text for r in results] == [f"echo: question number {i}" for i in range(12)]
    assert engine.accounting.requests == 12 and engine.accounting.tokens_in > 0
    assert all(r["body"]["model"] == "fake-model" and r["body"]["max_tokens"] == 16 for r in server.requests)
    again, engine2 = run_all(cfg, requests_for(cfg, 12))
    assert [r.text for r in again] == [r.text for r in results]
    assert engine2.accounting.cached == 12 and engine2.accounting.requests == 0
    assert len(server.requests) == 12


def test_429_retry_after_is_honoured(server, tmp_path):
    server.script = [{"status": 429, "retry_after": 1}]
    cfg = config(server, tmp_path, concurrency=1)
    results, engine = run_all(cfg, requests_for(cfg, 1))
    assert results[0].text == "echo: question number 0"
    first, second = server.requests
    assert first["status"] == 429 and second["status"] == 200
    assert second["t_start"] - first["t_end"] >= 1.0
    assert engine.accounting.retries == 1


def test_500_and_malformed_json_are_retried(server, tmp_path):
    server.script = [{"status": 500}, {"malformed": True}, {"status": 503}]
    cfg = config(server, tmp_path, concurrency=1)
    results, engine = run_all(cfg, requests_for(cfg, 2))
    assert [r.text for r in results] == ["echo: question number 0", "echo: question number 1"]
    assert [r["status"] for r in server.requests] == [500, 200, 503, 200, 200]
    assert engine.accounting.retries == 3 and engine.accounting.requests == 2


def test_a_hung_request_times_out_and_is_retried(server, tmp_path):
    server.script = [{"hang": 5}]
    cfg = config(server, tmp_path, concurrency=1, timeout=0.3)
    results, _ = run_all(cfg, requests_for(cfg, 1))
    assert results[0].text == "echo: question number 0"
    assert len(server.requests) == 2 and server.requests[1]["status"] == 200


def test_retries_are_bounded_and_the_error_is_one_clear_line(server, tmp_path):
    server.script = [{"status": 500}] * 10
    cfg = config(server, tmp_path, concurrency=1, max_retries=2)
    with pytest.raises(RequestFailed, match="failed 3 time"):
        run_all(cfg, requests_for(cfg, 1))
    assert len(server.requests) == 3
    server.script = [{"status": 500}] * 10
    cfg = config(server, tmp_path, concurrency=1, max_retries=50, max_retry_time=0.2)
    with pytest.raises(RequestFailed):
        run_all(cfg, requests_for(cfg, 1))
    assert len(server.requests) < 3 + 6


def test_auth_errors_stop_at_once_and_bad_requests_are_per_record(server, tmp_path):
    server.script = [{"status": 401}]
    cfg = config(server, tmp_path)
    with pytest.raises(RequestFailed, match="OPENAI_API_KEY"):
        run_all(cfg, requests_for(cfg, 1))
    assert len(server.requests) == 1
    server.script = [{"status": 400}]
    with pytest.raises(RequestRejected):
        run_all(cfg, requests_for(cfg, 1))


def test_rpm_limit_spaces_requests_on_the_server_clock(server, tmp_path):
    cfg = config(server, tmp_path, concurrency=8, rpm=120)  # one request per 0.5 s
    run_all(cfg, requests_for(cfg, 5))
    starts = sorted(r["t_start"] for r in server.requests)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 5
    assert starts[-1] - starts[0] >= 4 * 0.5 * 0.95
    assert min(gaps) >= 0.4  # evenly spaced, not a burst (scheduling jitter allowed)


def test_tpm_limit_spaces_requests(server, tmp_path):
    # Each request reserves its prompt estimate + max_tokens; 16 + 16 = 32 tokens at 3,840 tpm is 0.5 s of schedule.
    cfg = config(server, tmp_path, concurrency=4, tpm=3840, max_tokens=16)
    requests = [ChatRequest.of([{"role": "user", "content": "x" * 48}], cfg, seed=i) for i in range(3)]
    run_all(cfg, requests)
    starts = sorted(r["t_start"] for r in server.requests)
    # The refund of unused reservations can pull later slots forward, never below what the used tokens need.
    assert starts[1] - starts[0] >= 0.4


def test_max_cost_is_a_hard_stop_and_completed_work_is_kept(server, tmp_path):
    # 1 currency unit per token in and out; each request reserves about 10 in + 16 out = 26.
    cfg = config(server, tmp_path, concurrency=2, price_in=1_000_000, price_out=1_000_000, max_cost=100)
    with pytest.raises(BudgetExceeded, match="max-cost"):
        run_all(cfg, requests_for(cfg, 20))
    sent = len(server.requests)
    assert 1 <= sent < 20
    charged = [r for r in server.requests if r["status"] == 200]
    spent = sum(len(c) // 4 + len("echo: " + c) // 4 for c in (r["body"]["messages"][0]["content"] for r in charged))
    assert spent <= 100 and len(charged) == sent
    cache = ResponseCache(tmp_path / "cache.sqlite")
    assert len(cache) == sent  # every completed request was kept
    cache.close()
    cfg.max_cost = None
    results, engine = run_all(cfg, requests_for(cfg, 20))
    assert engine.accounting.cached == sent and engine.accounting.requests == 20 - sent
    assert len(server.requests) == 20


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


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
