"""A persistent per-request cache: SQLite (standard library) in WAL mode, one row per completed request.

The key is a sha256 over exactly what determines a reply: model, messages, sampling parameters and seed (plus an
optional ``nonce`` that tells deliberate re-asks apart). Each result is committed in the turn of the event loop in
which its request completes, before any other code sees it, so a run killed with SIGKILL and started again pays for no
request whose result had been handed on. The results of one turn share one transaction: a commit per result cost
~57 µs of CPU, one per 4-16 results ~25 µs per result (bench/RESULTS.md, "The wire gate and one cache transaction per
loop turn"). Only the reply text, its finish reason and its token usage are stored: never headers, URLs or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import canonical_json
from prefdata.storage.home import llm_cache_path


def request_key(model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any], nonce: str = "") -> str:
    """The cache key: identical requests share it, any change to what is sent gives a new one."""
    payload = {"model": model, "messages": [dict(m) for m in messages], "params": dict(params), "nonce": nonce}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class ResponseCache:
    """Key -> reply record, used from one thread. Inside an event loop, the `put`s of one turn are committed together
    by a callback queued at the first of them, which runs before anything that awaits their results resumes; outside
    one, each `put` is committed at once."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (the OS has the pages); only power loss can drop the tail.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, value TEXT NOT NULL)"
            )
        except sqlite3.Error as e:
            raise PrefdataError(f"cannot open the LLM cache: {e}", file=str(self.path)) from None
        self._pending: dict[str, tuple[str, str, str]] = {}  # key -> row, put in this turn of the loop
        self._failure: PrefdataError | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        self._raise_if_failed()
        pending = self._pending.get(key)
        if pending is not None:
            return json.loads(pending[2])
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, value: Mapping[str, Any]) -> None:
        self._raise_if_failed()
        first = not self._pending
        self._pending[key] = (key, model, canonical_json(value))
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._commit_in_loop)
            except RuntimeError:  # no event loop: nothing else runs before the caller goes on
                self.commit()

    def commit(self) -> None:
        """Write what was put and not yet written, in one transaction."""
        self._raise_if_failed()
        if not self._pending:
            return
        rows, self._pending = list(self._pending.values()), {}
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO responses (key, model, value) VALUES (?, ?, ?)", rows)
        except sqlite3.Error as e:  # a full disk, a file made read-only: the run stops at the next use
            self._failure = PrefdataError(f"cannot write the LLM cache: {e}", file=str(self.path))
            raise self._failure from None

    def _commit_in_loop(self) -> None:
        """`commit` as a loop callback: a failure is kept and raised by the next `put`, `get` or `close`."""
        with contextlib.suppress(PrefdataError):
            self.commit()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def keys(self) -> set[str]:
        self.commit()
        return {row[0] for row in self._db.execute("SELECT key FROM responses")}

    def __len__(self) -> int:
        self.commit()
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()


class NullCache:
    """``--cache none``: nothing is kept."""

    path = None

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, model: str, value: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def open_cache(cache: str | os.PathLike | None) -> ResponseCache | NullCache:
    """``None``: the shared cache (``$PREFDATA_HOME/llm.sqlite``); ``"none"``: keep nothing; else that SQLite file."""
    if isinstance(cache, str) and cache.lower() == "none":
        return NullCache()
    return ResponseCache(llm_cache_path() if cache is None else cache)
