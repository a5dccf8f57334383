"""The request engine under `synthesize` and `score`: any OpenAI-compatible server, crash-safe, rate- and cost-capped.

`openai.AsyncOpenAI` does the HTTP; this module adds what a long batch job needs around it: a cap on requests in
flight, retries with exponential backoff that honour ``Retry-After``, requests- and tokens-per-minute pacing of every
attempt (retries included), a bound on the total time one request may take, a stop of all new requests as soon as one
fails for good (a 401 means every other request would fail too), a persistent cache written as each request
completes, and token/cost accounting with a hard ``--max-cost``.

Retries are ours, not the client's (``max_retries=0``): inside one client call the retries could neither wait for the
pacer (``--rpm 300`` with 20 % 429s let 341 attempts a minute through: ``bench/llm_throughput.py --retry-pacing``) nor stop when another request has failed for
good. The API key is read from ``OPENAI_API_KEY`` by this module only, handed to the client, and never stored anywhere
else; every message built from the server's text goes through `redact` (a 401 body may echo the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
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
from prefdata.llm.collector import collector_out_of_the_way
from prefdata.llm.pacing import Clock, Pacer
from prefdata.llm.redact import API_KEY_ENV, redact
from prefdata.llm.reply import ChatResult, parse_reply
from prefdata.llm.retry import Malformed, retry_delay
from prefdata.llm.wire import WireGate, http_client

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ROW_LEVEL_STATUS = frozenset({400, 413, 422})  # this one request is refused (e.g. too long): quarantine the record
CONNECTIONS_PER_CLIENT = 8
# Requests that may be in the client, being built or read, beside the --concurrency ones at the server
# (`prefdata.llm.wire`): a quarter more. Measured at 64 in flight: an eighth more gained less, a half more about the
# same, as many again nothing or worse (bench/RESULTS.md, "The wire gate"). None under --rpm/--tpm: there the
# schedule sets the pace, and a request takes its turn when it enters the client, so one waiting there for a place
# would be sent later than its turn, closer to the next one than the limit allows, and under --tpm would reserve
# before the reply ahead of it had told what a reply costs.
BESIDE_THE_WIRE = 0.25
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the attempt number, in the header the openai client uses for it
# The client's platform telemetry (OS, arch, runtime, versions), left out of every request: no server needs it, and
# each header is parsed again at every layer of the HTTP stack (~10 % of the client's CPU per request,
# bench/llm_throughput.py). Auth, user agent, content type and the retry count are still sent.
OMITTED_HEADERS = ("X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
                   "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async")


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
    top_p: float | None = None  # None: not sent (and not part of the cache key, so older cache entries still match)

    @staticmethod
    def of(messages: Sequence[Mapping[str, str]], config: LLMConfig, *, seed: int | None = None, nonce: str = "",
           temperature: float | None = None, top_p: float | None = None) -> ChatRequest:
        return ChatRequest(
            messages=tuple((m["role"], m["content"]) for m in messages),
            temperature=config.temperature if temperature is None else temperature,
            max_tokens=config.max_tokens,
            seed=config.seed if seed is None else seed,
            nonce=nonce,
            top_p=top_p,
        )

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.seed is not None:
            params["seed"] = self.seed
        if self.top_p is not None:
            params["top_p"] = self.top_p
        return params


class RequestFailed(PrefdataError):
    """The server kept failing (or refused our credentials/model): the run stops; completed work stays cached.

    Once one request has failed, no other is sent: each request still waiting fails with the same message.
    """


class RequestRejected(Exception):
    """The server refused this one request (HTTP 400/413/422): its record is quarantined, the run goes on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Engine:
    """Use as ``async with Engine(config) as engine: result = await engine.complete(request)``."""

    def __init__(self, config: LLMConfig, *, clock: Clock | None = None, accounting: Accounting | None = None) -> None:
        """``accounting``: share one `Accounting` between engines (several servers in one run, one --max-cost)."""
        config.check()
        self.config = config
        self.accounting = accounting or Accounting(config.price_in, config.price_out, config.max_cost)
        self.cache = open_cache(config.cache)
        self._clients: list = []
        self._slots: asyncio.Queue[int] | None = None
        self.wire: WireGate | None = None
        beside = 0 if config.rpm or config.tpm else math.ceil(config.concurrency * BESIDE_THE_WIRE)
        self.places_in_client = config.concurrency + beside
        self._clock = clock or Clock()
        # The pacers sleep through `_sleep_unless_stopped`, so a request waiting for its turn learns of a stop at once.
        paced = Clock(now=self._clock.now, sleep=self._sleep_unless_stopped)
        self._rpm = Pacer(config.rpm, paced) if config.rpm else None
        self._tpm = Pacer(config.tpm, paced) if config.tpm else None
        self._failure: str | None = None  # the message of the request that failed for good: the run is stopping
        self._stopped = asyncio.Event()
        # Absolute: the client parses a relative path and joins it to its base URL again on every request.
        self._url = config.resolved_base_url().rstrip("/") + "/chat/completions"
        self._collector = contextlib.ExitStack()

    async def __aenter__(self) -> Engine:
        # --concurrency caps the requests at the server (the wire gate, around the HTTP client's send); a few more
        # may be in the client, being built or read, so that no place at the server waits for that (BESIDE_THE_WIRE).
        # A request's place in the client is a queue of client slots. Requests are spread over several clients of
        # about CONNECTIONS_PER_CLIENT places each: httpx2's pool (the benchmark's baseline) scans every
        # connection it holds per request; aiohttp's pool measures the same either way.
        self.wire = WireGate(self.config.concurrency, self._raise_if_stopped)
        self._slots = asyncio.Queue()
        clients = -(-self.config.concurrency // CONNECTIONS_PER_CLIENT)
        for slot in range(self.places_in_client):
            self._slots.put_nowait(slot % clients)
        if not self.config.dry_run:
            ssl_context = ssl.create_default_context()  # built once: loading the CA bundle costs ~40 ms each time
            self._clients = [self._make_client(ssl_context) for _ in range(clients)]
            self._collector.enter_context(collector_out_of_the_way())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._collector.close()
        for client in self._clients:
            await client.close()
        self.cache.close()

    def _make_client(self, ssl_context: ssl.SSLContext):
        import openai

        return openai.AsyncOpenAI(
            api_key=os.environ.get(API_KEY_ENV) or "no-key-set",  # local servers (vLLM, Ollama) need none
            base_url=self.config.resolved_base_url(),
            timeout=self.config.timeout,
            max_retries=0,  # retried in `_send`, where every attempt is paced and a stop is seen
            http_client=http_client(self.config.timeout, ssl_context, self.wire),
            default_headers={name: openai.Omit() for name in OMITTED_HEADERS},
        )

    def key(self, request: ChatRequest) -> str:
        return request_key(self.config.model, request.message_dicts(), request.params(), request.nonce)

    def lookup(self, request: ChatRequest, key: str | None = None) -> ChatResult | None:
        """The cached result of ``request``, if any (no request is sent)."""
        value = self.cache.get(key or self.key(request))
        if value is None:
            return None
        return ChatResult(value["text"], value.get("finish_reason"), value["tokens_in"], value["tokens_out"], True)

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The reply to ``request``: from the cache, or from the server (then cached at once)."""
        key = self.key(request)
        cached = self.lookup(request, key)
        if cached is not None:
            self.accounting.cached += 1
            return cached
        if self.config.dry_run:
            raise RuntimeError("a dry run sends no requests")
        assert self._slots is not None, "use the engine inside `async with`"
        self._raise_if_stopped()
        client = await self._slots.get()
        try:
            self._raise_if_stopped()
            estimate_in = estimate_tokens(request.message_dicts())
            reservation = self.accounting.reserve(estimate_in, request.max_tokens)
            try:
                tokens = estimate_in + self._expected_tokens_out(request.max_tokens)
                result = await self._send_bounded(request, self._clients[client], tokens)
            finally:
                self.accounting.release(reservation)
        finally:
            self._slots.put_nowait(client)
        if self._tpm:
            self._tpm.settle(tokens, result.tokens_in + result.tokens_out)
        self.cache.put(key, self.config.model, {
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
        done = self.accounting.requests - self.accounting.rejected
        return min(max_tokens, -(-self.accounting.tokens_out // done)) if done else max_tokens

    async def _pace(self, tokens: int) -> None:
        """Wait for this attempt's turn under --rpm and --tpm; every attempt takes one, retries included.

        A failed attempt keeps its reservation: providers count refused requests against their limits too.
        """
        if self._rpm:
            await self._rpm.acquire()
        if self._tpm:
            await self._tpm.acquire(tokens)
        self._raise_if_stopped()

    async def _sleep_unless_stopped(self, seconds: float, sleep: Callable[[float], Awaitable[None]] | None = None
                                    ) -> None:
        """Sleep ``seconds`` on the engine's clock (or ``sleep``), waking early when the run stops."""
        sleeping = asyncio.ensure_future((sleep or self._clock.sleep)(seconds))
        stopping = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((sleeping, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()

    def _raise_if_stopped(self) -> None:
        if self._failure is not None:
            raise RequestFailed(self._failure)

    def _stop(self, message: str) -> RequestFailed:
        """Record the failure that stops the run (the first one wins) and wake every request waiting to be sent."""
        if self._failure is None:
            self._failure = message
            self.accounting.failures += 1
            self._stopped.set()
        return RequestFailed(self._failure)

    async def _send_bounded(self, request: ChatRequest, client, tokens: int) -> ChatResult:
        """`_send`, its retries within ``max_retry_time`` in all; a final failure stops the run with one clear line."""
        await self._pace(tokens)  # the first turn is not counted against --max-retry-time: it bounds the retries
        with self.wire.judging():  # a failed exchange's place at the server is given back once this is judged
            return await self._judge(request, client, tokens)

    async def _judge(self, request: ChatRequest, client, tokens: int) -> ChatResult:
        import openai

        started = time.monotonic()
        try:
            return await asyncio.wait_for(self._send(request, client, tokens), self.config.max_retry_time)
        except RequestFailed:
            raise
        except openai.APIStatusError as e:
            status = e.status_code
            if status in ROW_LEVEL_STATUS:
                self.accounting.record_rejected()
                raise RequestRejected(status, _short(e)) from None
            hint = " (check OPENAI_API_KEY)" if status in (401, 403) else ""
            hint = hint or (f" (is {self.config.model!r} served there?)" if status == 404 else "")
            problem = f"HTTP {status}{hint}: {_short(e)}"
        except openai.APITimeoutError as e:
            refused = _connection_failure(e)
            problem = f"connection error: {refused}" if refused else f"no reply within --timeout {self.config.timeout:g}s"
        except openai.APIConnectionError as e:
            problem = f"connection error: {_short(e)}"
        except (Malformed, ValueError, openai.APIResponseValidationError) as e:
            problem = f"malformed reply: {_short(e)}"
        except asyncio.TimeoutError:
            problem = f"still no reply after --max-retry-time {self.config.max_retry_time:g}s"
        except openai.OpenAIError as e:
            problem = f"{type(e).__name__}: {_short(e)}"
        raise self._stop(
            f"a request to {self.config.base_url_host()} failed after {time.monotonic() - started:.0f}s, last: "
            f"{problem}; completed results are cached: run again to continue"
        ) from None

    async def _send(self, request: ChatRequest, client, tokens: int) -> ChatResult:
        """One chat completion, asked again (up to ``max_retries``) after a retryable failure, each retry paced.

        The reply is taken as plain JSON rather than built into pydantic models: it halves the client's CPU time per
        request, which is what limits throughput at high concurrency, and we read only four fields.
        """
        body = {"model": self.config.model, "messages": request.message_dicts(), **request.params()}
        attempt = 0
        while True:
            try:
                reply = await client.post(self._url, cast_to=object, body=body,
                                          options={"headers": {RETRY_COUNT_HEADER: str(attempt)}})
                return parse_reply(reply, body["messages"])
            except Exception as e:
                delay = retry_delay(e, attempt) if attempt < self.config.max_retries else None
                if delay is None:
                    raise
            self.wire.judged()  # asked again: the place it held at the server goes to the next request
            attempt += 1
            self.accounting.retries += 1
            if delay:
                await self._sleep_unless_stopped(delay, asyncio.sleep)
            await self._pace(tokens)

    def summary(self) -> dict[str, Any]:
        """What goes into the manifest: never the full URL, never the key."""
        return {"model": redact(self.config.model), "base_url_host": self.config.base_url_host(),
                **self.accounting.summary()}


def _connection_failure(error: BaseException) -> str | None:
    """The refused or reset connection behind a timeout error, if that is what it was.

    The aiohttp transport reports every connection failure as a connect *timeout*; the `OSError` it chains says
    what really happened (e.g. nothing listens on the port), which is the message the user needs.
    """
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return _short(cause)
        cause = cause.__cause__ or cause.__context__
    return None


def _short(error: BaseException, limit: int = 200) -> str:
    """The error as one line, secrets masked before it is cut (a cut could leave part of a key unrecognised)."""
    text = redact(" ".join(str(error).split()))
    return text[:limit] + ("…" if len(text) > limit else "")
