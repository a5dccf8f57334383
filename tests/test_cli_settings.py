"""Where the LLM cache lives: ``$PREFDATA_HOME/llm.sqlite``; the old ``PREFDATA_CACHE`` still works for a release.

Driven through `prefdata score` in subprocesses (the deprecation line is printed once per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import fake_model, hh_rows, write_dataset

from prefdata.llm.cache import ResponseCache

DEPRECATION = "prefdata: warning: PREFDATA_CACHE is deprecated"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(reply=fake_model) as s:
        yield s


@pytest.fixture
def dataset(tmp_path, hh_harmless_test) -> Path:
    return write_dataset(tmp_path / "in", hh_rows(hh_harmless_test, 3))


def run_score(dataset: Path, out: Path, server: FakeOpenAI, home: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PREFDATA_", "XDG_"))}
    # HOME points into the test folder so that the default location, were it used, is visible and harmless.
    full = {**clean, "HOME": str(home), "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.url, **env}
    return subprocess.run([sys.executable, "-m", "prefdata.cli", "score", str(dataset), "--out", str(out),
                           "--model", "judge", "--quiet"], env=full, capture_output=True, text=True, timeout=120)


def cached_replies(path: Path) -> int:
    cache = ResponseCache(path)
    try:
        return len(cache)
    finally:
        cache.close()


def test_prefdata_cache_set_to_a_directory_still_works_with_a_deprecation_line(tmp_path, dataset, server):
    # What scripts/sample-pipeline.sh used to do for the trainers: PREFDATA_CACHE=$OUT/cache (a folder).
    folder = tmp_path / "cache"
    folder.mkdir()
    done = run_score(dataset, tmp_path / "out", server, tmp_path / "home", PREFDATA_CACHE=str(folder))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(DEPRECATION) == 1 and "PREFDATA_HOME" in done.stderr
    assert cached_replies(folder / "llm.sqlite") == 2 * 3  # both replies of each of the 3 pairs
    assert not (tmp_path / "home").exists()


def test_prefdata_cache_naming_a_sqlite_file_is_still_that_file(tmp_path, dataset, server):
    file = tmp_path / "old" / "replies.sqlite"
    done = run_score(dataset, tmp_path / "out", server, tmp_path / "home", PREFDATA_CACHE=str(file))
    assert done.returncode == 0, done.stderr
    assert DEPRECATION in done.stderr
    assert cached_replies(file) == 2 * 3


def test_llm_cache_lands_in_prefdata_home(tmp_path, dataset, server):
    home = tmp_path / "state"
    done = run_score(dataset, tmp_path / "out", server, tmp_path / "home", PREFDATA_HOME=str(home))
    assert done.returncode == 0, done.stderr
    assert DEPRECATION not in done.stderr
    assert cached_replies(home / "llm.sqlite") == 2 * 3
    assert not (tmp_path / "home").exists()
    again = run_score(dataset, tmp_path / "out2", server, tmp_path / "home", PREFDATA_HOME=str(home))
    assert again.returncode == 0, again.stderr
    assert len(server.requests) >= 2 * 3 and "6 cached" in again.stdout  # the second run paid for nothing


def test_without_settings_the_cache_is_under_the_home_folder(tmp_path, dataset, server):
    done = run_score(dataset, tmp_path / "out", server, tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert cached_replies(tmp_path / "home" / ".cache" / "prefdata" / "llm.sqlite") == 2 * 3
