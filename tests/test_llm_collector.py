"""The garbage collector during a run of requests: frozen and slowed inside the engine, as it was afterwards."""

from __future__ import annotations

import asyncio
import gc

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import engine_config, numbered_requests

from prefdata.llm.batch import ordered_map
from prefdata.llm.collector import YOUNG_THRESHOLD, collector_out_of_the_way
from prefdata.llm.engine import Engine


@pytest.fixture(autouse=True)
def _python_defaults():
    """Each test starts with nothing frozen and the default thresholds, and leaves the process that way."""
    gc.unfreeze()
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_objects_alive_at_the_start_are_frozen_and_young_collections_are_rarer_until_exit():
    alive = [object() for _ in range(10)]
    with collector_out_of_the_way():
        assert gc.get_freeze_count() >= len(alive)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)


def test_a_larger_threshold_already_set_is_kept():
    gc.set_threshold(50_000, 50, 100)
    with collector_out_of_the_way():
        assert gc.get_threshold() == (50_000, 50, 100)
    assert gc.get_threshold() == (50_000, 50, 100)


def test_only_the_scope_that_froze_first_unfreezes():
    with collector_out_of_the_way():
        with collector_out_of_the_way():
            pass
        assert gc.get_freeze_count() > 0 and gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0


def test_what_a_caller_froze_stays_frozen():
    gc.freeze()
    frozen = gc.get_freeze_count()
    with collector_out_of_the_way():
        pass
    assert gc.get_freeze_count() >= frozen > 0


def test_the_engine_holds_the_collector_back_only_while_it_is_open(tmp_path):
    seen = []
    with FakeOpenAI() as server:
        cfg = engine_config(server, tmp_path)

        async def main():
            async with Engine(cfg) as engine:
                async for _ in ordered_map(numbered_requests(cfg, 3), engine.complete, window=4):
                    seen.append((gc.get_freeze_count() > 0, gc.get_threshold()[0]))

        asyncio.run(main())
    assert seen == [(True, YOUNG_THRESHOLD)] * 3
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)


def test_a_dry_run_leaves_the_collector_alone(tmp_path):
    with FakeOpenAI() as server:
        cfg = engine_config(server, tmp_path, dry_run=True)

        async def main():
            async with Engine(cfg):
                return gc.get_freeze_count(), gc.get_threshold()

        assert asyncio.run(main()) == (0, (700, 10, 10))
