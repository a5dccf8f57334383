"""The LLM cache: the results of one turn of the event loop are one transaction, committed before any code that
awaits them resumes; outside a loop every result is committed at once; a write that fails stops the run in one line."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.llm.cache import ResponseCache

VALUE = {"text": "an answer", "finish_reason": "stop", "tokens_in": 3, "tokens_out": 2}


def committed(path) -> int:
    """Rows another connection sees: what a run started after a SIGKILL would find."""
    with sqlite3.connect(path) as other:
        return other.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def counting_commits(cache: ResponseCache) -> list[str]:
    statements: list[str] = []
    cache._db.set_trace_callback(lambda sql: statements.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return statements


def test_the_results_of_one_turn_are_one_transaction_committed_before_their_awaiter_resumes(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    commits = counting_commits(cache)

    async def one_result(i: int) -> None:
        cache.put(f"key-{i}", "m", {**VALUE, "text": f"answer {i}"})

    async def main() -> tuple[int, int]:
        waiting = [asyncio.ensure_future(one_result(i)) for i in range(5)]  # all five run in the same turn
        await asyncio.gather(*waiting)  # resumes only after the turn in which they finished
        seen = committed(path)
        cache.put("key-late", "m", VALUE)
        assert cache.get("key-late") == VALUE  # read back before it is written
        await asyncio.sleep(0)
        return seen, committed(path)

    assert asyncio.run(main()) == (5, 6)
    assert len(commits) == 2
    cache.close()


def test_outside_an_event_loop_each_result_is_committed_at_once(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache.put("k", "m", VALUE)
    assert committed(path) == 1 and cache.get("k") == VALUE
    cache.close()


def test_close_writes_what_the_loop_had_no_turn_left_to_write(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)

    async def main() -> None:
        cache.put("k", "m", VALUE)  # the loop ends before the queued commit runs

    asyncio.run(main())
    cache.close()
    assert committed(path) == 1


def test_a_write_that_fails_stops_the_run_at_the_next_use_with_one_line(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk

    async def main() -> None:
        cache.put("a", "m", VALUE)
        await asyncio.sleep(0)  # the commit runs as a loop callback and fails there
        cache.put("b", "m", VALUE)

    with pytest.raises(PrefdataError, match="cannot write the LLM cache") as raised:
        asyncio.run(main())
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    with pytest.raises(PrefdataError, match="cannot write the LLM cache"):
        cache.close()
