"""A scriptable OpenAI-compatible HTTP server for tests and the benchmark (our own code; no network needed).

It serves ``POST /v1/chat/completions`` and ``POST /v1/completions`` on 127.0.0.1 (an ephemeral port) with a minimal
asyncio HTTP/1.1 implementation (keep-alive, Content-Length bodies), so hundreds of concurrent connections cost little.
Each request is recorded with timestamps on the server's own clock (``time.monotonic``): ``t_start`` when it
arrived, ``t_reply`` just before its answer was written (no client can have read the answer earlier), ``t_end`` when
the answer was written; ``attempt`` is the openai client's retry number. Timing tests assert on these, never on the
client's wall clock. Behaviour is scripted per test:

- ``reply(body) -> str``: the assistant text for a request (default: echo of the last message, a number for judges).
- ``latency``: seconds to wait before answering every request.
- ``script``: a list of actions consumed one per request before the default behaviour, each a dict such as
  ``{"status": 429, "retry_after": 1}``, ``{"status": 500, "retry_after_ms": 1}``, ``{"hang": 5}``,
  ``{"malformed": True}``, ``{"text": "not a number"}``, ``{"usage": [1, 2]}`` (what the reply carries as ``usage``),
  ``{"finish_reason": "length"}`` (what the choice says instead of ``stop``),
  ``{"status": 401, "echo_auth": True}`` (the error message quotes the request's Authorization header, as some
  servers and proxies do).
- ``rules``: ``[(predicate(body) -> bool, action)]`` applied to every matching request (always, not consumed).

Run standalone (the benchmark does, so the server's CPU is not the client's): ``python tests/fake_openai_server.py
--latency 0.1`` prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

Action = dict[str, Any]


def score_reply(body: dict[str, Any]) -> str:
    """A judge-like reply: a whole number 0-10 that depends only on the request (so runs are reproducible)."""
    digest = hashlib.sha256(json.dumps(body.get("messages", body.get("prompt")), sort_keys=True).encode()).digest()
    return str(digest[0] % 11)


def default_reply(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "echo: " + body["messages"][-1]["content"][-200:]
    return "echo: " + str(body.get("prompt", ""))[-200:]


class FakeOpenAI:
    def __init__(self, *, reply: Callable[[dict[str, Any]], str] = default_reply, latency: float = 0.0,
                 script: list[Action] | None = None, rules: list[tuple[Callable[[dict], bool], Action]] | None = None,
                 record: bool = True) -> None:
        self.reply = reply
        self.latency = latency
        self.script: list[Action] = list(script or [])
        self.rules = list(rules or [])
        self.record = record
        self.requests: list[dict[str, Any]] = []  # {"path", "body", "auth", "header_names", "t_start", ...}
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completed(self) -> list[dict[str, Any]]:
        """Requests answered with HTTP 200 and fully written to the socket."""
        with self._lock:
            return [r for r in self.requests if r.get("status") == 200 and r.get("t_end") is not None]

    # --- lifecycle -------------------------------------------------------------------------------------------------
    async def serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP --------------------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_alive = headers.get("connection", "").lower() != "close"
                await self._respond(method, path, headers, body, writer)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _next_action(self, body: dict[str, Any]) -> Action:
        with self._lock:
            action = self.script.pop(0) if self.script else {}
        for predicate, rule in self.rules:
            if predicate(body):
                action = {**rule, **action}
        return action

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                       writer: asyncio.StreamWriter) -> None:
        entry: dict[str, Any] = {"path": path, "t_start": time.monotonic(), "t_reply": None, "t_end": None,
                                 "status": None, "auth": headers.get("authorization", ""),
                                 "attempt": int(headers.get("x-stainless-retry-count", "0")),
                                 "header_names": sorted(headers)}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        entry["body"] = body
        if self.record:
            with self._lock:
                self.requests.append(entry)
        if method != "POST" or path.rstrip("/") not in ("/v1/chat/completions", "/v1/completions"):
            await self._write(writer, entry, 404, {"error": {"message": f"no route {method} {path}"}})
            return
        action = self._next_action(body)
        delay = action.get("hang", action.get("latency", self.latency))
        if delay:
            await asyncio.sleep(delay)
        if "status" in action and action["status"] != 200:
            extra = {header: str(action[key]) for key, header in (("retry_after", "retry-after"),
                                                                  ("retry_after_ms", "retry-after-ms")) if key in action}
            message = f"Incorrect API key provided: {entry['auth']}" if action.get("echo_auth") else "scripted error"
            await self._write(writer, entry, action["status"], {"error": {"message": message}}, extra)
            return
        if action.get("malformed"):
            await self._write(writer, entry, 200, b'{"id": "x", "choices": [ {"message": ', {})
            return
        text = action["text"] if "text" in action else self.reply(body)
        completion = _completion(path, body, text)
        if "finish_reason" in action:
            completion["choices"][0]["finish_reason"] = action["finish_reason"]
        if "usage" in action:
            completion["usage"] = action["usage"]
        await self._write(writer, entry, 200, completion)

    async def _write(self, writer: asyncio.StreamWriter, entry: dict[str, Any], status: int, payload: Any,
                     extra: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", "content-type: application/json",
                f"content-length: {len(data)}", *(f"{k}: {v}" for k, v in (extra or {}).items())]
        entry["t_reply"] = time.monotonic()
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        entry["status"] = status
        entry["t_end"] = time.monotonic()


def _completion(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    if "messages" in body:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"])
    else:
        prompt_chars = len(str(body.get("prompt", "")))
    usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(text) // 4)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    common = {"id": "cmpl-fake", "created": 0, "model": body.get("model", "fake"), "usage": usage}
    if path.rstrip("/").endswith("chat/completions"):
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        return {**common, "object": "chat.completion", "choices": [choice]}
    return {**common, "object": "text_completion", "choices": [{"index": 0, "finish_reason": "stop", "text": text}]}


def spawn(latency: float, reply: str = "echo"):
    """Run the server in its own process (so its CPU is not the caller's); return ``(process, base_url)``."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, __file__, "--latency", str(latency), "--reply", reply],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the fake server did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def seeded_reply(body: dict[str, Any]) -> str:
    """`default_reply` plus the request's seed: a policy whose K samples of one prompt differ."""
    return f"{default_reply(body)} (seed {body.get('seed')})"


REPLIES = {"echo": default_reply, "score": score_reply, "seeded": seeded_reply}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--reply", choices=list(REPLIES), default="echo",
                        help="echo the prompt, answer 0-10, or echo with the request's seed")
    args = parser.parse_args()
    server = FakeOpenAI(reply=REPLIES[args.reply], latency=args.latency, record=False)

    async def run() -> None:
        await server.serve()
        print(f"PORT {server.port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
