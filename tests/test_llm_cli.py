"""The CLI verbs end to end in subprocesses: SIGKILL and resume, --max-cost, the API key never written."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import SECRET, env_for, fake_model, hh_rows, prefdata_cmd, write_dataset, written_files

from prefdata.llm.cache import ResponseCache, request_key
from prefdata.storage.dataset import iter_rows


@pytest.fixture(scope="module")
def rows(hh_harmless_test):
    return hh_rows(hh_harmless_test, 24)


def body_key(body: dict) -> str:
    params = {"temperature": body["temperature"], "max_tokens": body["max_tokens"], "seed": body["seed"]}
    nonce = "retry" if len(body["messages"]) > 1 else ""
    return request_key(body["model"], body["messages"], params, nonce)


def test_sigkill_then_resume_pays_for_no_completed_request(tmp_path, rows):
    dataset = write_dataset(tmp_path / "in", rows)
    cache = tmp_path / "cache.sqlite"
    args = prefdata_cmd("score", str(dataset), "--model", "judge", "--out", str(tmp_path / "out"), "--cache",
                        str(cache), "--concurrency", "4", "--quiet")
    with FakeOpenAI(reply=fake_model, latency=0.1) as server:
        process = subprocess.Popen(args, env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while len(server.completed()) < 12 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        assert not (tmp_path / "out").exists()  # no half dataset
        first_run = len(server.requests)
        answered = len(server.completed())
        kept = ResponseCache(cache)
        cached_keys = kept.keys()
        kept.close()
        assert 0 < len(cached_keys) < 2 * len(rows)  # the kill landed mid-run, after work had completed
        assert answered - len(cached_keys) <= 4  # at most the requests in flight (--concurrency) were lost

        finished = subprocess.run(args, env=env_for(server), capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
        second = server.requests[first_run:]
    repeated = [r for r in second if body_key(r["body"]) in cached_keys]
    assert repeated == []
    assert len(second) == 2 * len(rows) - len(cached_keys)
    manifest = json.loads((tmp_path / "out" / "prefdata.json").read_text())
    assert manifest["llm"]["cached_hits"] == len(cached_keys)
    assert [row["id"] for _, row in iter_rows(tmp_path / "out")] == [row["id"] for row in rows]


def test_max_cost_stops_cleanly_and_the_key_is_never_written(tmp_path, rows):
    dataset = write_dataset(tmp_path / "in", rows)
    common = ["--model", "judge", "--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "2", "--price-in",
              "1000000", "--price-out", "1000000", "--max-tokens", "8", "--quiet"]
    with FakeOpenAI(reply=fake_model) as server:
        stopped = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "out"), *common,
                                              "--max-cost", "3000"), env=env_for(server), capture_output=True,
                                 text=True, timeout=60)
        assert stopped.returncode == 3, stopped.stderr
        assert stopped.stderr.startswith("prefdata: error: --max-cost 3000 reached") and "Traceback" not in stopped.stderr
        assert not (tmp_path / "out").exists()
        paid = len(server.requests)
        assert 0 < paid < 2 * len(rows)
        assert sum(r["body"]["messages"][0]["content"].__len__() // 4 + 1 for r in server.requests) <= 3000

        done = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "out"), *common),
                              env=env_for(server), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert len(server.requests) == 2 * len(rows)  # the stopped run's replies were not bought again
        assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)  # the key was really in use

        pairs = subprocess.run(prefdata_cmd("score", str(tmp_path / "out"), "--out", str(tmp_path / "pairs"),
                                            "--pairwise", "--relabel", *common[:-1]),
                               env=env_for(server), capture_output=True, text=True, timeout=60)
        assert pairs.returncode == 0, pairs.stderr
    files = written_files(tmp_path)
    assert any(p.name.startswith("cache.sqlite") for p in files) and any(p.name == "prefdata.json" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    manifest = json.loads((tmp_path / "pairs" / "prefdata.json").read_text())
    assert "base_url" not in manifest["options"] and manifest["options"]["base_url_host"] == f"127.0.0.1:{server.port}"
    assert manifest["llm"]["base_url_host"] == f"127.0.0.1:{server.port}"


def test_dry_run_and_bad_options_are_one_line(tmp_path, rows):
    dataset = write_dataset(tmp_path / "in", rows[:4])
    with FakeOpenAI(reply=fake_model) as server:
        dry = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "o"), "--model", "m",
                                          "--dry-run", "--cache", "none", "--price-in", "2.5"),
                             env=env_for(server), capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["requests"] == 8 and server.requests == []
        bad = subprocess.run(prefdata_cmd("score", str(dataset), "--out", str(tmp_path / "o"), "--model", "m",
                                          "--relabel", "--cache", "none"), env=env_for(server), capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--pairwise" in bad.stderr
        missing = subprocess.run(prefdata_cmd("score", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                                              "--model", "m", "--cache", "none"), env=env_for(server),
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2 and "no such directory" in missing.stderr and "Traceback" not in missing.stderr
