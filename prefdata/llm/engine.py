"""The request engine under `synthesize` and `score`: any OpenAI-compatible server, crash-safe, rate- and cost-capped.

`openai.AsyncOpenAI` does the HTTP, including retries with exponential backoff that honour ``Retry-After``
(``max_retries``); this module adds what a long batch job needs around it: a cap on requests in flight, requests- and
tokens-per-minute pacing, a bound on the total time one request may take, a persistent cache written as each request
completes, and token/cost accounting with a hard ``--max-cost``. The API key is read from ``OPENAI_API_KEY`` by this
module only, handed to the client, and never stored anywhere else.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from prefdata.contract.errors import PrefdataError
from prefdata.llm.accounting import Accounting, estimate_tokens
from prefdata.llm.cache import open_cache, request_key

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ROW_LEVEL_STATUS = frozenset({400, 413, 422})  # this one request is refused (e.g. too long): quarantine the record
CONNECTIONS_PER_CLIENT = 8
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the openai client numbers its attempts in this request header


@dataclass
class LLMConfig:
    """Everything about talking to the server, and the sampling defaults of requests built from it.

    Each field is one option of `prefdata synthesize` and `prefdata score` (the CLI is generated from this class).
    """

    model: str
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_retries: int = 6
    max_retry_time: float = 600.0  # total seconds one request may take, its retries included
    cache: str | os.PathLike | None = None  # None: $PREFDATA_HOME/llm.sqlite; "none": no cache
    price_in: float = 0.0
    price_out: float = 0.0
    max_cost: float | None = None
    temperature: float | None = None  # None: the job's own default (generating and judging differ)
    max_tokens: int = 512
    seed: int = 0
    dry_run: bool = False

    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

    def base_url_host(self) -> str:
        """The host (and port) only: a URL may carry credentials or tokens in its path or query."""
        parts = urlsplit(self.resolved_base_url())
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host

    def with_default_temperature(self, temperature: float) -> LLMConfig:
        """This config, with ``temperature`` filled in where the caller left it to the job."""
        return self if self.temperature is not None else replace(self, temperature=temperature)

    def check(self) -> None:
        for name in ("concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise PrefdataError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("rpm", "tpm", "timeout", "max_retry_time"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PrefdataError(f"--{name.replace('_', '-')} must be positive")
        if self.max_retries < 0 or self.price_in < 0 or self.price_out < 0:
            raise PrefdataError("--max-retries, --price-in and --price-out cannot be negative")
        if self.max_cost is not None and not (self.price_in or self.price_out):
            raise PrefdataError("--max-cost needs --price-in and/or --price-out to know what a token costs")


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion. ``nonce`` only separates deliberate re-asks in the cache; it is not sent.

    ``temperature`` None leaves it to the server's default (it is then neither sent nor part of the cache key).
    """

    messages: tuple[tuple[str, str], ...]
    temperature: float | None
    max_tokens: int
    seed: int | None = None
    nonce: str = ""

    @staticmethod
    def of(messages: Sequence[Mapping[str, str]], config: LLMConfig, *, seed: int | None = None, nonce: str = "",
           temperature: float | None = None) -> ChatRequest:
        return ChatRequest(
            messages=tuple((m["role"], m["content"]) for m in messages),
            temperature=config.temperature if temperature is None else temperature,
            max_tokens=config.max_tokens,
            seed=config.seed if seed is None else seed,
            nonce=nonce,
        )

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.seed is not None:
            params["seed"] = self.seed
        return params


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    cached: bool = False


class RequestFailed(PrefdataError):
    """The server kept failing (or refused our credentials/model): the run stops; completed work stays cached."""


class RequestRejected(Exception):
    """The server refused this one request (HTTP 400/413/422): its record is quarantined, the run goes on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Malformed(Exception):
    """A 200 reply that is not a chat completion (bad JSON, no choices): asked again, like a server error."""


@dataclass(frozen=True)
class Clock:
    """Where the pacers read the time and wait: tests pass a manual clock to check the schedule exactly."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


# Hand-written rather than `aiolimiter` (bench/llm_throughput.py --pacing, bench/RESULTS.md): its bucket lets a full
# bucket through at once (120 % of the --rpm limit over the run) and cannot settle a reservation after the reply.
class Pacer:
    """Smooth rate limiting (GCRA): each unit of weight occupies ``60 / per_minute`` seconds of the schedule.

    Requests are spaced evenly rather than bursting at the start of each minute, which keeps providers that enforce
    their limits on short windows happy. The schedule is shared by all tasks of one event loop. A request reserves
    its expected weight; `settle` corrects the schedule by what it really used.
    """

    def __init__(self, per_minute: float, clock: Clock | None = None) -> None:
        self.interval = 60.0 / per_minute
        self.clock = clock or Clock()
        self._next = 0.0

    async def acquire(self, weight: float = 1.0) -> None:
        now = self.clock.now()
        slot = max(now, self._next)
        self._next = slot + weight * self.interval
        if slot > now:
            await self.clock.sleep(slot - now)

    def settle(self, reserved: float, used: float) -> None:
        """Give back schedule time reserved and not used, or charge what was used beyond the reservation."""
        if used < reserved:
            self._next = max(self.clock.now(), self._next - (reserved - used) * self.interval)
        else:
            self._next += (used - reserved) * self.interval


class Engine:
    """Use as ``async with Engine(config) as engine: result = await engine.complete(request)``."""

    def __init__(self, config: LLMConfig, *, clock: Clock | None = None) -> None:
        config.check()
        self.config = config
        self.accounting = Accounting(config.price_in, config.price_out, config.max_cost)
        self.cache = open_cache(config.cache)
        self._clients: list = []
        self._slots: asyncio.Queue[int] | None = None
        self._rpm = Pacer(config.rpm, clock) if config.rpm else None
        self._tpm = Pacer(config.tpm, clock) if config.tpm else None

    async def __aenter__(self) -> Engine:
        # The cap on requests in flight is a queue of client slots, which also bounds each client's connection pool.
        # Connections are spread over several clients of at most CONNECTIONS_PER_CLIENT each: the pool scans every
        # connection it holds (a syscall per idle one) for each request, which at 64+ connections in one pool costs
        # more CPU than everything else together.
        self._slots = asyncio.Queue()
        clients = -(-self.config.concurrency // CONNECTIONS_PER_CLIENT)
        for slot in range(self.config.concurrency):
            self._slots.put_nowait(slot % clients)
        if not self.config.dry_run:
            ssl_context = ssl.create_default_context()  # built once: loading the CA bundle costs ~40 ms each time
            self._clients = [self._make_client(ssl_context) for _ in range(clients)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.close()
        self.cache.close()

    def _make_client(self, ssl_context: ssl.SSLContext):
        import openai

        async def count_retry(request) -> None:
            if request.headers.get(RETRY_COUNT_HEADER, "0") != "0":
                self.accounting.retries += 1

        http_client = openai.DefaultAsyncHttpxClient(timeout=self.config.timeout, verify=ssl_context,
                                                     event_hooks={"request": [count_retry]})
        return openai.AsyncOpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "no-key-set",  # local servers (vLLM, Ollama) need none
            base_url=self.config.resolved_base_url(),
            timeout=self.config.timeout,
            max_retries=self.config.max_retries,
            http_client=http_client,
        )

    def key(self, request: ChatRequest) -> str:
        return request_key(self.config.model, request.message_dicts(), request.params(), request.nonce)

    def lookup(self, request: ChatRequest) -> ChatResult | None:
        """The cached result of ``request``, if any (no request is sent)."""
        value = self.cache.get(self.key(request))
        if value is None:
            return None
        return ChatResult(value["text"], value.get("finish_reason"), value["tokens_in"], value["tokens_out"], True)

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The reply to ``request``: from the cache, or from the server (then cached at once)."""
        cached = self.lookup(request)
        if cached is not None:
            self.accounting.cached += 1
            return cached
        if self.config.dry_run:
            raise RuntimeError("a dry run sends no requests")
        assert self._slots is not None, "use the engine inside `async with`"
        client = await self._slots.get()
        try:
            estimate_in = estimate_tokens(request.message_dicts())
            reservation = self.accounting.reserve(estimate_in, request.max_tokens)
            try:
                if self._rpm:
                    await self._rpm.acquire()
                tokens = estimate_in + self._expected_tokens_out(request.max_tokens)
                if self._tpm:
                    await self._tpm.acquire(tokens)
                result = await self._send_bounded(request, self._clients[client])
            finally:
                self.accounting.release(reservation)
        finally:
            self._slots.put_nowait(client)
        if self._tpm:
            self._tpm.settle(tokens, result.tokens_in + result.tokens_out)
        self.cache.put(self.key(request), self.config.model, {
            "text": result.text, "finish_reason": result.finish_reason,
            "tokens_in": result.tokens_in, "tokens_out": result.tokens_out,
        })
        self.accounting.record(result.tokens_in, result.tokens_out)
        return result

    def _expected_tokens_out(self, max_tokens: int) -> int:
        """What a reply will cost as far as the replies so far tell (``max_tokens`` before the first one).

        Reserving ``max_tokens`` for every request in flight would hold the --tpm schedule far behind the real usage
        when replies are short (a judge's score is one token); a wrong guess is corrected by `Pacer.settle`.
        """
        done = self.accounting.requests
        return min(max_tokens, -(-self.accounting.tokens_out // done)) if done else max_tokens

    async def _send_bounded(self, request: ChatRequest, client) -> ChatResult:
        """`_send` with the client's retries, within ``max_retry_time`` in all; errors become one clear line."""
        import openai

        started = time.monotonic()
        try:
            return await asyncio.wait_for(self._send(request, client), self.config.max_retry_time)
        except openai.APIStatusError as e:
            status = e.status_code
            if status in ROW_LEVEL_STATUS:
                raise RequestRejected(status, _short(e)) from None
            hint = " (check OPENAI_API_KEY)" if status in (401, 403) else ""
            hint = hint or (f" (is {self.config.model!r} served there?)" if status == 404 else "")
            problem = f"HTTP {status}{hint}: {_short(e)}"
        except openai.APITimeoutError:
            problem = f"no reply within --timeout {self.config.timeout:g}s"
        except openai.APIConnectionError as e:
            problem = f"connection error: {_short(e)}"
        except (_Malformed, ValueError, openai.APIResponseValidationError) as e:
            problem = f"malformed reply: {_short(e)}"
        except asyncio.TimeoutError:
            problem = f"still no reply after --max-retry-time {self.config.max_retry_time:g}s"
        self.accounting.failures += 1
        raise RequestFailed(
            f"a request to {self.config.base_url_host()} failed after {time.monotonic() - started:.0f}s, last: "
            f"{problem}; completed results are cached: run again to continue"
        ) from None

    async def _send(self, request: ChatRequest, client) -> ChatResult:
        """One chat completion through the openai client, asked again (up to ``max_retries``) if the reply is not one.

        The reply is taken as plain JSON rather than built into pydantic models: it halves the client's CPU time per
        request, which is what limits throughput at high concurrency, and we read only four fields.
        """
        import openai

        body = {"model": self.config.model, "messages": request.message_dicts(), **request.params()}
        attempt = 0
        while True:
            try:
                return _parse_reply(await client.post("/chat/completions", cast_to=dict, body=body), request)
            except (_Malformed, ValueError, openai.APIResponseValidationError):
                if attempt >= self.config.max_retries:
                    raise
                attempt += 1
                self.accounting.retries += 1

    def summary(self) -> dict[str, Any]:
        """What goes into the manifest: never the full URL, never the key."""
        return {"model": self.config.model, "base_url_host": self.config.base_url_host(), **self.accounting.summary()}


def _parse_reply(reply: Any, request: ChatRequest) -> ChatResult:
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"]
        usage = reply.get("usage") or {}
    except (AttributeError, IndexError, TypeError, KeyError) as e:
        raise _Malformed(f"not a chat completion ({type(e).__name__})") from None
    if not isinstance(text, str):
        raise _Malformed("the reply has no message content")
    tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):  # some servers omit usage: estimate
        tokens_in = estimate_tokens(request.message_dicts())
        tokens_out = -(-len(text) // 4)
    return ChatResult(text, choice.get("finish_reason"), tokens_in, tokens_out)


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text[:limit] + ("…" if len(text) > limit else "")
