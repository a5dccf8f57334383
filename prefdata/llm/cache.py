"""A persistent per-request cache: SQLite (standard library) in WAL mode, one row per completed request.

The key is a sha256 over exactly what determines a reply: model, messages, sampling parameters and seed (plus an
optional ``nonce`` that tells deliberate re-asks apart). Each result is committed the moment its request completes, so
a run killed with SIGKILL and started again pays for no request that had completed. Only the reply text, its finish
reason and its token usage are stored: never headers, URLs or keys.
"""

from __future__ import annotations

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
    """Key -> reply record. Used from one thread (the event loop); every `put` is its own committed transaction."""

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

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, value: Mapping[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, model, value) VALUES (?, ?, ?)", (key, model, canonical_json(value))
        )

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM responses")}

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
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
