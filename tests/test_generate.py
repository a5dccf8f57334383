"""`generate`: K answers per prompt against the fake server: distinct seeds, quarantine reasons, several policies,
provenance in meta, dry run, cache, the command line."""

from __future__ import annotations

import json
import subprocess

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import env_for, prefdata_cmd
from support import write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row, row_meta
from prefdata.jobs.generate import Policy, generate
from prefdata.llm.batch import items_under_way
from prefdata.llm.engine import LLMConfig
from prefdata.storage.dataset import iter_rows

K = 4


def user(text):
    return [{"role": "user", "content": text}]


def policy_reply(body):
    """A policy that answers each seed differently, except on the prompts that script a defect per ``seed % 4``
    (seeds of one prompt are consecutive, so each answer index meets each defect once)."""
    prompt, seed = body["messages"][-1]["content"], body["seed"]
    if "same every time" in prompt:
        return "The one answer I always give."
    if "troubled" in prompt:
        return {0: "   ", 1: "I'm sorry, but I can't help with that.", 2: "This answer goes on and on",
                3: f"A fine answer ({body['model']})"}[seed % 4]
    return f"Answer of {body['model']} to {prompt!r} with seed {seed}."


TRUNCATE = [(lambda body: "troubled" in body["messages"][-1]["content"] and body["seed"] % 4 == 2,
             {"finish_reason": "length"})]


@pytest.fixture
def prompts_dir(tmp_path):
    rows = [
        make_row(user("Tell me about owls."), "Owls hunt at night.", "Owls are fish.", source="t", group="g-owls"),
        make_row(user("Tell me about owls."), "Owls have big eyes.", "No.", source="t", group="g-owls"),
        make_row(user("Say the same every time."), source="t"),
        make_row([{"role": "system", "content": "Be brief."}, *user("A troubled question?")], source="t"),
    ]
    return write_dataset(tmp_path / "in", rows)


def cfg(server, tmp_path, **overrides):
    settings = {"model": "unused", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"), "concurrency": 8,
                "max_tokens": 32}
    return LLMConfig(**{**settings, **overrides})


def quarantine(out):
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def test_answers_quarantine_reasons_and_counts_reconcile(prompts_dir, tmp_path):
    out = tmp_path / "out"
    with FakeOpenAI(reply=policy_reply, rules=TRUNCATE) as server:
        manifest = generate(prompts_dir, out, models=["pol"], config=cfg(server, tmp_path), n_completions=K,
                            top_p=0.9, quiet=True)
        bodies = [r["body"] for r in server.requests]
    # 3 distinct prompts (two rows share the owls prompt) x K answers; every request carries its own seed
    assert len(bodies) == 3 * K
    for prompt in ("Tell me about owls.", "Say the same every time.", "A troubled question?"):
        seeds = [b["seed"] for b in bodies if b["messages"][-1]["content"] == prompt]
        assert len(seeds) == K and len(set(seeds)) == K
    assert all(b["temperature"] == 1.0 and b["top_p"] == 0.9 and b["max_tokens"] == 32 for b in bodies)
    assert any(b["messages"][0] == {"role": "system", "content": "Be brief."} for b in bodies)  # sent as they are

    counts = manifest["counts"]
    assert counts["records_in"] == 3 * K
    assert counts["rows_out"] == K + 1 + 1
    assert counts["quarantined_by_reason"] == {"duplicate_sibling": K - 1, "empty_reply": 1, "refusal": 1,
                                               "truncated": 1}
    lines = quarantine(out)
    assert {line["reason"] for line in lines} == {"duplicate_sibling", "empty_reply", "refusal", "truncated"}
    assert all(line["record"]["model"] == "pol" and "seed" in line["record"] for line in lines)

    rows = [row for _, row in iter_rows(out)]
    owls = [r for r in rows if r["prompt"] == user("Tell me about owls.")]
    assert len(owls) == K and {r["group"] for r in owls} == {"g-owls"}  # the prompt's group: answers stay together
    assert [row_meta(r)["generate"]["answer_index"] for r in owls] == list(range(K))  # written in request order
    for row in rows:
        meta = row_meta(row)["generate"]
        assert row["rejected"] is None and row["chosen_score"] is None and row["source"] == "generate"
        assert meta["model"] == "pol" and meta["base_url_host"] == f"127.0.0.1:{server.port}"
        assert meta["sampling"] == {"temperature": 1.0, "top_p": 0.9, "max_tokens": 32, "seed": meta["seed"]}
        assert meta["template"] is None and meta["n_completions"] == K
        assert str(meta["seed"]) in row["chosen"] or "same" in row["prompt"][-1]["content"] or "fine" in row["chosen"]
    assert manifest["generate"]["prompts"] == 3 and manifest["generate"]["answers_requested"] == 3 * K


def test_several_policies_each_on_its_own_server(prompts_dir, tmp_path):
    with FakeOpenAI(reply=policy_reply) as first, FakeOpenAI(reply=policy_reply) as second:
        manifest = generate(prompts_dir, tmp_path / "out", models=[f"sft={first.url}", f"hosted={second.url}"],
                            config=cfg(first, tmp_path, base_url="http://127.0.0.1:9/v1"), n_completions=2,
                            splits=["train"], quiet=True)
        assert {r["body"]["model"] for r in first.requests} == {"sft"}
        assert {r["body"]["model"] for r in second.requests} == {"hosted"}
        assert len(first.requests) == len(second.requests) == 3 * 2
    rows = [row for _, row in iter_rows(tmp_path / "out")]
    hosts = {row_meta(r)["generate"]["model"]: row_meta(r)["generate"]["base_url_host"] for r in rows}
    assert hosts == {"sft": f"127.0.0.1:{first.port}", "hosted": f"127.0.0.1:{second.port}"}
    # the "same every time" prompt: both policies give the same text, so the second policy's answer is a duplicate
    same = [line for line in quarantine(tmp_path / "out") if "same every time" in line["record"]["prompt"][-1]["content"]]
    assert [line["reason"] for line in same] == ["duplicate_sibling"] * (2 * 2 - 1)
    assert [(line["record"]["model"], line["record"]["answer_index"]) for line in same] == [
        ("sft", 1), ("hosted", 0), ("hosted", 1)]
    assert manifest["llm"]["requests"] == 12  # one accounting for the run


def test_policy_parsing():
    assert Policy.parse("gpt-4o-mini") == Policy("gpt-4o-mini")
    assert Policy.parse("runs/sft=http://localhost:8000/v1") == Policy("runs/sft", "http://localhost:8000/v1")
    assert Policy.parse("a=b") == Policy("a=b")  # not a URL: part of the name
    with pytest.raises(PrefdataError, match="given twice"):
        generate("x", "y", models=["m", "m=http://h/v1"], config=LLMConfig(model="m"))


def test_template_wraps_the_conversation(prompts_dir, tmp_path):
    with FakeOpenAI(reply=policy_reply) as server:
        manifest = generate(prompts_dir, tmp_path / "out", models=["pol"], config=cfg(server, tmp_path),
                            n_completions=1, template="actor", quiet=True)
        sent = [r["body"]["messages"] for r in server.requests]
    assert all(len(m) == 1 and m[0]["content"].startswith("You are a helpful") for m in sent)
    meta = row_meta(next(row for _, row in iter_rows(tmp_path / "out")))["generate"]
    assert meta["template"] == "actor" and len(meta["template_sha256"]) == 64
    assert manifest["generate"]["template"] == "actor"


def test_split_directory_defaults_to_ppo_train(tmp_path):
    directory = write_dataset(tmp_path / "split", {
        "sft_train": [make_row(user("Only for SFT."), "Sure.", source="t")],
        "ppo_train": [make_row(user("A PPO prompt."), source="t")],
    })
    with FakeOpenAI(reply=policy_reply) as server:
        generate(directory, tmp_path / "out", models=["pol"], config=cfg(server, tmp_path), n_completions=2,
                 quiet=True)
        assert {r["body"]["messages"][-1]["content"] for r in server.requests} == {"A PPO prompt."}
    with pytest.raises(PrefdataError, match="no split"):
        generate(directory, tmp_path / "out2", models=["pol"], config=cfg(server, tmp_path), splits=["nope"])


def test_dry_run_and_cache(prompts_dir, tmp_path):
    with FakeOpenAI(reply=policy_reply, rules=TRUNCATE) as server:
        estimate = generate(prompts_dir, tmp_path / "dry", models=["pol"], config=cfg(server, tmp_path, dry_run=True),
                            n_completions=K)
        assert server.requests == [] and not (tmp_path / "dry").exists()
        assert estimate["requests"] == 3 * K and estimate["cached_hits"] == 0
        generate(prompts_dir, tmp_path / "a", models=["pol"], config=cfg(server, tmp_path), n_completions=K, quiet=True)
        sent = len(server.requests)
        generate(prompts_dir, tmp_path / "b", models=["pol"], config=cfg(server, tmp_path), n_completions=K, quiet=True)
        assert len(server.requests) == sent  # every answer came from the cache
        warm = generate(prompts_dir, tmp_path / "dry2", models=["pol"],
                        config=cfg(server, tmp_path, dry_run=True), n_completions=K)
        assert warm["requests"] == 0 and warm["cached_hits"] == 3 * K
    for split in ("train",):
        a = sorted((tmp_path / "a" / split).glob("*.arrow"))
        b = sorted((tmp_path / "b" / split).glob("*.arrow"))
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_cli_summary_and_one_line_errors(prompts_dir, tmp_path):
    with FakeOpenAI(reply=policy_reply) as server:
        env = env_for(server)
        done = subprocess.run(prefdata_cmd("generate", str(prompts_dir), "--out", str(tmp_path / "out"), "--model",
                                           "pol", "--n-completions", "2", "--cache", str(tmp_path / "c.sqlite"), "-q"),
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "6 records in -> " in done.stdout and "6 requests" in done.stdout
        manifest = json.loads((tmp_path / "out" / "prefdata.json").read_text())
        assert manifest["options"]["model"] == ["pol"] and manifest["options"]["n_completions"] == 2
        bad = subprocess.run(prefdata_cmd("generate", str(prompts_dir), "--out", str(tmp_path / "o2"), "--model",
                                          "pol", "--splits", "test"), capture_output=True, text=True, env=env,
                             timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no split(s) test" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_max_cost_caps_the_run_across_policies(prompts_dir, tmp_path):
    from prefdata.llm.accounting import BudgetExceeded

    with FakeOpenAI(reply=policy_reply) as first, FakeOpenAI(reply=policy_reply) as second:
        config = cfg(first, tmp_path, price_in=1000.0, price_out=1000.0, max_cost=0.2, concurrency=2)
        with pytest.raises(BudgetExceeded):
            generate(prompts_dir, tmp_path / "out", models=[f"a={first.url}", f"b={second.url}"], config=config,
                     n_completions=K, quiet=True)
        sent = len(first.requests) + len(second.requests)
    # a request costs about 0.02 here (~20 tokens at 1000 per 1M): the 24 requests of the two policies cannot all fit
    assert 0 < sent < 2 * 3 * K and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("slots", "per_item", "window"), [(64, 4, 65), (128, 4, 129), (16, 1, 65), (64, 3, 87),
                                                         (1, 100, 2), (8, 0, 33)])
def test_enough_prompts_are_under_way_for_four_requests_per_slot(slots, per_item, window):
    """A freed slot must find a request waiting for it: 4 per slot, rounded up, plus the prompt at the head."""
    assert items_under_way(slots, per_item) == window
