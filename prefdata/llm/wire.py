"""The cap on requests at the server, taken where a request is really sent: around the HTTP client's ``send``.

`--concurrency` bounds what a server sees at once. Counted around the whole `openai` call, it would also count the
client's work before a request leaves (building it: ~40 % of the client's CPU per request) and after its reply is
in, so each of the N places would sit idle while its request is built and read on a busy event loop. Counted here,
N requests are at the server while a few more are built and read beside them (bench/RESULTS.md, "The wire gate and
one cache transaction per loop turn": `generate`'s median 78-80 -> 83.4 % of ideal in interleaved runs).

The gate is also the last point before a request leaves, so it is where a stopped run refuses to send. A place whose
exchange failed (an error status, a timeout, a broken connection) is not given to the next request until the engine
has judged that failure (`judging`), so a failure that stops the run lets no request waiting here through.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any


class WireGate:
    """At most ``limit`` HTTP exchanges at once, and none begun once ``check`` raises."""

    def __init__(self, limit: int, check: Callable[[], None]) -> None:
        self._free = asyncio.Semaphore(limit)
        self._check = check
        # Places of failed exchanges, kept until the request they belong to is judged (None: no request is judging).
        self._parked: ContextVar[list[None] | None] = ContextVar("parked", default=None)
        self.busy = 0  # exchanges under way now
        self.most = 0  # the most ever under way at once (tests read it to show the cap holds)

    async def enter(self) -> None:
        await self._free.acquire()
        try:
            self._check()
        except BaseException:
            self._free.release()
            raise
        self.busy += 1
        self.most = max(self.most, self.busy)

    def leave(self, failed: bool) -> None:
        self.busy -= 1
        parked = self._parked.get()
        if failed and parked is not None:
            parked.append(None)
        else:
            self._free.release()

    @contextlib.contextmanager
    def judging(self) -> Iterator[None]:
        """Around all attempts of one request: the places its failed exchanges held are given back at the end."""
        parked: list[None] = []
        token = self._parked.set(parked)
        try:
            yield
        finally:
            self._parked.reset(token)
            self._give_back(parked)

    def judged(self) -> None:
        """The failure of this request's last exchange is judged (it will be asked again): give its place back."""
        parked = self._parked.get()
        if parked:
            self._give_back(parked)

    def _give_back(self, parked: list[None]) -> None:
        for _ in parked:
            self._free.release()
        parked.clear()


_PARSED_URLS = 64  # URLs kept parsed per client: an engine sends to one URL; the bound is for any other use


@functools.cache
def gated(client_class: type) -> type:
    """``client_class`` (an ``httpx2.AsyncClient``) whose every ``send`` passes ``gate`` (the ``gate=`` argument).

    The openai client reads a whole reply inside ``send`` (the engine never streams), so a place is held exactly
    while a request is at the server (or, after a failure, until the engine has judged it).
    """

    class GatedClient(client_class):  # type: ignore[misc, valid-type]
        def __init__(self, *, gate: WireGate, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._wire_gate = gate
            self._parsed_urls: dict[str, Any] = {}

        def build_request(self, method: str, url: Any, **kwargs: Any) -> Any:
            """The request, its URL parsed once per client: the openai client hands every request's URL over as a
            string, which the HTTP client would parse again each time (`bench/RESULTS.md`, "One URL parse")."""
            if isinstance(url, str):
                parsed = self._parsed_urls.get(url)
                if parsed is None:
                    if len(self._parsed_urls) >= _PARSED_URLS:
                        self._parsed_urls.clear()
                    parsed = self._parsed_urls[url] = type(self.base_url)(url)
                url = parsed
            return super().build_request(method, url, **kwargs)

        async def send(self, request: Any, **kwargs: Any) -> Any:
            gate = self._wire_gate
            await gate.enter()
            try:
                response = await super().send(request, **kwargs)
            except BaseException:
                gate.leave(failed=True)
                raise
            gate.leave(failed=response.status_code >= 400)
            return response

    GatedClient.__name__ = GatedClient.__qualname__ = f"Gated{client_class.__name__}"
    return GatedClient


def http_client(timeout: float, ssl_context: ssl.SSLContext, gate: WireGate):
    """The HTTP client under each `openai.AsyncOpenAI`: aiohttp, openai's documented option for concurrency, each
    exchange through the engine's wire gate.

    At 64 in flight the client's CPU per request is what caps throughput; with the client's default (httpx2's own
    pool) it is ~40 % higher: bench/llm_throughput.py measures both in one run.
    """
    import openai

    return gated(openai.DefaultAioHttpClient)(gate=gate, timeout=timeout, verify=ssl_context)
