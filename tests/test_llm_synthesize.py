"""`synthesize`: self-instruct expansion from ChatLLaMA seeds, filters with reason codes, the three kinds."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import fake_model, length_score

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import row_meta
from prefdata.jobs.synthesize import OVERFETCH, parse_prompt_list, synthesize
from prefdata.llm.engine import LLMConfig
from prefdata.llm.templating import load_templates, template_sha256
from prefdata.pipeline.similarity import rouge_l, tokens
from prefdata.storage.dataset import iter_rows

SEEDS = [
    "Explain how tides work to a ten year old.",
    "Write a short poem about a lighthouse keeper who collects seashells.",
    "What are three practical ways to reduce food waste at home?",
    "Summarise the main causes of the French Revolution in one paragraph.",
    "How do I reverse a singly linked list in Python, step by step?",
    "请用三句话介绍一下长城的历史。",
]


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "rlhf_seeds.json"  # ChatLLaMA rlhf format: [{"user_input": ...}]
    path.write_text(json.dumps([{"user_input": s} for s in SEEDS], ensure_ascii=False), encoding="utf-8")
    return path


def cfg(server, tmp_path, **overrides):
    settings = {"model": "writer", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"), "seed": 3,
                "concurrency": 8}
    settings.update(overrides)
    return LLMConfig(**settings)


def test_rlhf_prompts_are_new_distinct_and_filtered_with_reasons(seeds, tmp_path):
    with FakeOpenAI(reply=fake_model) as server:
        manifest = synthesize(seeds, tmp_path / "out", kind="rlhf", n=20, config=cfg(server, tmp_path), quiet=True)
        bodies = [r["body"] for r in server.requests]
    rows = [row for _, row in iter_rows(tmp_path / "out")]
    assert len(rows) == 20
    prompts = [row["prompt"][0]["content"] for row in rows]
    for i, prompt in enumerate(prompts):
        assert row_kind_prompt_only(rows[i])
        for other in SEEDS + prompts[:i]:
            assert rouge_l(tokens(prompt), tokens(other)) < 0.7
    reasons = Counter(json.loads(line)["reason"] for line in (tmp_path / "out" / "quarantine.jsonl").open())
    assert reasons["near_duplicate"] > 0 and reasons["too_short"] > 0 and reasons["refusal"] > 0
    assert manifest["counts"]["records_in"] == 20 + sum(reasons.values())
    # Seed examples really were shown, sampled into each request.
    shown = [sum(seed in b["messages"][0]["content"] for seed in SEEDS) for b in bodies]
    assert all(count == 4 for count in shown[:2])
    meta = row_meta(rows[0])
    templates = load_templates()
    assert rows[0]["source"] == "synth/rlhf" and meta["model"] == "writer"
    assert meta["template_sha256"] == {"rlhf": template_sha256(templates["rlhf"])}
    assert meta["sampling"] == {"temperature": 0.7, "max_tokens": 512, "seed": 3}
    assert manifest["llm"]["requests"] == len(bodies) and manifest["synthesis"]["kept"] == 20


def row_kind_prompt_only(row) -> bool:
    return row["chosen"] is None and row["rejected"] is None and row["prompt"][0]["role"] == "user"


def test_actor_and_reward_kinds_add_completions_and_scores(seeds, tmp_path):
    with FakeOpenAI(reply=fake_model) as server:
        synthesize(seeds, tmp_path / "actor", kind="actor", n=6, config=cfg(server, tmp_path), quiet=True)
        synthesize(seeds, tmp_path / "reward", kind="reward", n=6, config=cfg(server, tmp_path), quiet=True)
    actor = [row for _, row in iter_rows(tmp_path / "actor")]
    reward = [row for _, row in iter_rows(tmp_path / "reward")]
    assert len(actor) == 6 and all(r["chosen"].startswith("Here is a careful answer: ") for r in actor)
    assert all(r["chosen"].endswith(r["prompt"][0]["content"][::-1]) for r in actor)
    assert [r["prompt"] for r in reward] == [r["prompt"] for r in actor]  # same seed, same prompts (cache shared)
    assert all(r["chosen_score"] == length_score(r["chosen"]) for r in reward)
    assert set(row_meta(reward[0])["template_sha256"]) == {"rlhf", "actor", "reward"}
    assert {r["source"] for r in reward} == {"synth/reward"}


def test_same_seeds_and_seed_give_identical_bytes_and_a_new_seed_new_prompts(seeds, tmp_path):
    def run(name, seed, cache):
        with FakeOpenAI(reply=fake_model) as server:
            synthesize(seeds, tmp_path / name, kind="rlhf", n=10, config=cfg(server, tmp_path, seed=seed,
                                                                              cache=str(tmp_path / cache)), quiet=True)
        return [p.read_bytes() for p in sorted((tmp_path / name).rglob("*.arrow"))]

    first = run("a", 1, "c1.sqlite")
    assert first == run("b", 1, "c2.sqlite")  # separate caches: the deterministic server answers the same
    assert first != run("c", 2, "c3.sqlite")


def test_dry_run_and_unusable_seeds(seeds, tmp_path):
    with FakeOpenAI(reply=fake_model) as server:
        estimate = synthesize(seeds, tmp_path / "out", kind="reward", n=16, config=cfg(server, tmp_path,
                              dry_run=True), quiet=True)
        assert server.requests == []
    first_round = math.ceil(16 * OVERFETCH / 8)  # 8 prompts asked per request, with some over-asking
    assert estimate["requests"] == first_round + 16 + 16 and not (tmp_path / "out").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"user_input": "   "}\n', encoding="utf-8")
    with pytest.raises(PrefdataError):
        synthesize(empty, tmp_path / "out", kind="rlhf", n=1, config=LLMConfig(model="m", cache="none"), quiet=True)


def test_parse_prompt_list():
    reply = "Here are some requests:\n1. Plan a picnic.\n2) Fix my bike chain\n- Bullet one here\nnoise"
    assert parse_prompt_list(reply) == ["Plan a picnic.", "Fix my bike chain", "Bullet one here"]
    assert parse_prompt_list("one line\n\nanother line") == ["one line", "another line"]
