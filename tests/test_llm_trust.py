"""Issue #10, class 7: secrets never leave the engine, a fatal status stops the run, every attempt is paced and counted.

Timing is read on the fake server's clock (when each request arrived), never the client's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import (
    SECRET,
    engine_config,
    env_for,
    fake_model,
    hh_rows,
    last_content,
    numbered_requests,
    prefdata_cmd,
    write_dataset,
    written_files,
)

from prefdata.llm.batch import ordered_map
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig, RequestFailed, RequestRejected
from prefdata.llm.redact import MASK, redact
from prefdata.llm.retry import MAX_RETRY_AFTER, retry_delay


def run_all(cfg: LLMConfig, requests: list[ChatRequest], *, window: int = 8, keep_rejected: bool = False):
    """Every request through one engine; a refused request yields its `RequestRejected` when ``keep_rejected``."""
    async def one(engine: Engine, request: ChatRequest):
        try:
            return await engine.complete(request)
        except RequestRejected as e:
            if not keep_rejected:
                raise
            return e

    async def main():
        async with Engine(cfg) as engine:
            return [r async for r in ordered_map(requests, lambda r: one(engine, r), window=window)], engine

    return asyncio.run(main())


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


# --- secrets --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("secret_text", [
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "Bearer abc.def-ghi",
    "0123456789abcdef0123456789abcdef01234567",  # 40 hex digits
    "QWxhZGRpbjpvcGVuIHNlc2FtZQ9xYzU3MkxBbGFkZGlu",  # base64
    "api_key=hunter2hunter2",
])
def test_key_shaped_text_is_masked(secret_text):
    masked = redact(f"Error code: 401 - got '{secret_text}' here")
    assert masked.startswith("Error code: 401 - got '") and masked.endswith("' here")
    secret_part = secret_text.split()[-1].split("=")[-1]
    assert secret_part not in masked and MASK in masked


def test_the_api_key_value_itself_is_masked_whatever_its_shape(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "plainwordkey")
    assert redact("the key plainwordkey was refused") == f"the key {MASK} was refused"


@pytest.mark.parametrize("ordinary", [
    "HTTP 400: Error code: 400 - {'error': {'message': 'max_tokens is too large: 4096'}}",
    "/tmp/pytest-of-someone/pytest-12/test_the_longest_name_in_the_suite0/out/quarantine.jsonl",
    "request_identifier_with_many_underscores_and_words",
    "12345678901234567890123456789012345678901234567890",
])
def test_ordinary_text_is_left_alone(ordinary):
    assert redact(ordinary) == ordinary


@pytest.fixture(scope="module")
def rows(hh_harmless_test):
    return hh_rows(hh_harmless_test, 24)


def test_a_401_that_echoes_the_key_stops_the_run_with_one_redacted_line(tmp_path, rows):
    dataset = write_dataset(tmp_path / "in", rows)
    with FakeOpenAI(reply=fake_model, latency=0.05, rules=[(lambda body: True, {"status": 401, "echo_auth": True})]
                    ) as server:
        run = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "out"), "--model", "judge",
                                          "--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "4", "--quiet"),
                             env=env_for(server), capture_output=True, text=True, timeout=60)
        sent = list(server.requests)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("prefdata: error: a request to 127.0.0.1:")
    assert "HTTP 401 (check OPENAI_API_KEY)" in run.stderr and f"Bearer {MASK}" in run.stderr
    assert SECRET not in run.stderr and "sk-" not in run.stderr and "Traceback" not in run.stderr
    assert all(r["auth"] == f"Bearer {SECRET}" for r in sent)  # the server really was sent (and echoed) the key
    # After the first 401 nothing new is sent: only the requests already in flight (--concurrency 4) reached it.
    assert 1 <= len(sent) <= 4
    assert not (tmp_path / "out").exists()
    for path in written_files(tmp_path):
        assert SECRET.encode() not in path.read_bytes(), path


def test_refused_requests_are_counted_and_their_quarantine_messages_redacted(tmp_path, rows):
    dataset = write_dataset(tmp_path / "in", rows[:6])
    refused = {rows[1]["chosen"], rows[4]["rejected"]}

    def is_refused(body: dict) -> bool:
        return any(reply in last_content(body) for reply in refused)

    with FakeOpenAI(reply=fake_model, rules=[(is_refused, {"status": 400, "echo_auth": True})]) as server:
        run = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "out"), "--model", "judge",
                                          "--cache", "none", "--concurrency", "2", "--quiet"),
                             env=env_for(server), capture_output=True, text=True, timeout=60)
        statuses = [r["status"] for r in server.requests]
    assert run.returncode == 0, run.stderr
    assert statuses.count(400) == 2 and statuses.count(200) == 10  # 6 rows, 2 replies each; no retries
    manifest = json.loads((tmp_path / "out" / "prefdata.json").read_text())
    assert manifest["llm"]["requests"] == 12 and manifest["llm"]["rejected"] == 2
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert [q["reason"] for q in quarantined] == ["llm_rejected", "llm_rejected"]
    assert all(f"Bearer {MASK}" in q["message"] for q in quarantined)
    for path in written_files(tmp_path):
        assert SECRET.encode() not in path.read_bytes(), path


# --- a fatal status stops every new request -----------------------------------------------------------------------

@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_a_fatal_status_stops_new_requests_at_once(server, tmp_path, status):
    server.rules = [(lambda body: True, {"status": status, "latency": 0.02})]
    cfg = engine_config(server, tmp_path, concurrency=8)
    with pytest.raises(RequestFailed, match=f"HTTP {status}"):
        run_all(cfg, numbered_requests(cfg, 64), window=32)
    assert 1 <= len(server.requests) <= 8  # the requests in flight when the first answer came; none after


def test_a_fatal_status_cancels_a_pending_retry(server, tmp_path):
    # Question 0 is told to come back in 1 s; question 1 is refused for good meanwhile: question 0 is not asked again.
    server.rules = [(lambda body: last_content(body).endswith(" 0"), {"status": 429, "retry_after": 1}),
                    (lambda body: last_content(body).endswith(" 1"), {"status": 401, "latency": 0.2})]
    cfg = engine_config(server, tmp_path, concurrency=2)
    with pytest.raises(RequestFailed, match="HTTP 401"):
        run_all(cfg, numbered_requests(cfg, 2))
    assert sorted(r["status"] for r in server.requests) == [401, 429]


# --- every attempt is paced -----------------------------------------------------------------------------------------

def test_retries_wait_for_their_turn_under_rpm(server, tmp_path):
    # --rpm 600: one attempt per 0.1 s. 8 requests and 3 of them told to retry at once (429, 1 ms) make 11 attempts,
    # which the pacer must spread over at least 10 intervals, on the server's clock.
    server.script = [{"status": 429, "retry_after_ms": 1}] * 3
    cfg = engine_config(server, tmp_path, concurrency=4, rpm=600)
    results, engine = run_all(cfg, numbered_requests(cfg, 8))
    arrivals = sorted(r["t_start"] for r in server.requests)
    assert len(arrivals) == 11 and engine.accounting.retries == 3 and engine.accounting.requests == 8
    # Paced, the eleven are sent ten intervals (1.0 s) apart; unpaced retries land among the first attempts, so all
    # eleven arrive within seven (0.7 s). The bound sits halfway, so that neither side is within one arrival's lag
    # on a busy machine (the exact schedule is checked on an injected clock in test_llm_engine.py).
    assert arrivals[-1] - arrivals[0] >= 8.5 * 0.1


# --- replies of the wrong shape -------------------------------------------------------------------------------------

@pytest.mark.parametrize("usage", [["12", "3"], "12", 7, True, {"prompt_tokens": "3", "completion_tokens": -1}])
def test_a_usage_that_is_not_an_object_of_counts_is_estimated(server, tmp_path, usage):
    server.script = [{"usage": usage}]
    cfg = engine_config(server, tmp_path, concurrency=1)
    results, engine = run_all(cfg, numbered_requests(cfg, 1))
    # Estimated as the engine does without usage: 17 characters -> 5 tokens + 4 for the message; reply 23 chars -> 6.
    assert results[0].text == "echo: question number 0"
    assert (results[0].tokens_in, results[0].tokens_out) == (9, 6)
    assert engine.accounting.requests == 1 and len(server.requests) == 1


def status_error(status: int, **headers: str):
    import httpx2 as httpx  # the HTTP library of the installed openai client
    import openai

    response = httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://127.0.0.1/v1"))
    return openai.APIStatusError("scripted", response=response, body=None)


def test_retry_rules_follow_the_status_and_what_the_server_asks():
    import email.utils
    import time

    assert retry_delay(status_error(429, **{"retry-after-ms": "250"}), 0) == 0.25
    assert retry_delay(status_error(503, **{"retry-after": "3"}), 5) == 3.0
    assert 0.375 <= retry_delay(status_error(500), 0) <= 0.5  # 0.5 s less up to 25 % jitter
    assert 6.0 <= retry_delay(status_error(502), 6) <= 8.0  # doubled each attempt, capped at 8 s
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 <= retry_delay(status_error(429, **{"retry-after": in_a_minute}), 0) <= 61
    assert retry_delay(status_error(429, **{"retry-after": str(MAX_RETRY_AFTER + 1)}), 0) is None
    assert retry_delay(status_error(500, **{"x-should-retry": "false"}), 0) is None
    assert retry_delay(status_error(418, **{"x-should-retry": "true"}), 0) is not None
    for fatal in (401, 403, 404, 405, 400):
        assert retry_delay(status_error(fatal), 0) is None
