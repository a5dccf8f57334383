"""`score`: pointwise and pairwise judging against the fake server, strict parsing, relabelling, determinism."""

from __future__ import annotations

import json

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import fake_model, hh_rows, last_content, length_score, write_dataset

from prefdata.contract.row import row_meta
from prefdata.jobs.score import pairwise_verdict, parse_choice, parse_score, score
from prefdata.llm.engine import LLMConfig
from prefdata.storage.dataset import iter_rows


@pytest.fixture(scope="module")
def rows(hh_harmless_test):
    return hh_rows(hh_harmless_test, 16)


@pytest.fixture
def dataset(tmp_path, rows):
    return write_dataset(tmp_path / "in", rows)


def cfg(server, tmp_path, **overrides):
    settings = {"model": "judge", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"), "temperature": 0.0,
                "concurrency": 8}
    settings.update(overrides)
    return LLMConfig(**settings)


def quarantine(out):
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def test_strict_parsing():
    assert parse_score("0") == 0.0 and parse_score(" 7 ") == 7.0 and parse_score("Score: 8/10") == 8.0
    for bad in ("seven", "7 because it is good", "11", "-1", "", "7, 8", "nan", "inf"):
        assert parse_score(bad) is None, bad
    assert parse_choice("A") == "A" and parse_choice(" b.") == "B" and parse_choice("Tie") == "tie"
    for bad in ("A or B", "Both", "AB", "I prefer A"):
        assert parse_choice(bad) is None, bad
    assert pairwise_verdict("A", "B") == ("chosen", 1.0)
    assert pairwise_verdict("B", "A") == ("rejected", 0.0)
    assert pairwise_verdict("A", "A") == ("inconsistent", 0.5)
    assert pairwise_verdict("tie", "tie") == ("tie", 0.5)


def test_pointwise_scores_both_replies(dataset, tmp_path, rows):
    with FakeOpenAI(reply=fake_model) as server:
        manifest = score(dataset, tmp_path / "out", config=cfg(server, tmp_path), quiet=True)
    out_rows = [row for _, row in iter_rows(tmp_path / "out")]
    assert [r["id"] for r in out_rows] == [r["id"] for r in rows]
    for original, scored in zip(rows, out_rows):
        assert scored["chosen_score"] == length_score(original["chosen"])
        assert scored["rejected_score"] == length_score(original["rejected"])
        assert row_meta(scored)["judge"]["model"] == "judge"
    assert manifest["llm"]["requests"] == 2 * len(rows) and manifest["judge"]["scored"] == len(rows)
    assert manifest["llm"]["base_url_host"] == f"127.0.0.1:{server.port}"


def test_unparseable_reply_is_retried_once_then_quarantined(dataset, tmp_path, rows):
    hopeless = rows[3]["chosen"]
    flaky = rows[5]["chosen"]

    def judge(body):
        text = body["messages"][0]["content"]
        if hopeless in text:
            return "It is quite good."
        if flaky in text and len(body["messages"]) == 1:
            return "Maybe a seven?"
        if flaky in text:
            return "0"  # the retry (with the follow-up message) answers properly; 0 is a valid score
        return fake_model(body)

    with FakeOpenAI(reply=judge) as server:
        manifest = score(dataset, tmp_path / "out", config=cfg(server, tmp_path), quiet=True)
        hopeless_requests = [r for r in server.requests if hopeless in r["body"]["messages"][0]["content"]]
    assert len(hopeless_requests) == 2  # asked once more, not forever
    assert "Answer again" in last_content(hopeless_requests[1]["body"])
    [entry] = quarantine(tmp_path / "out")
    assert entry["reason"] == "judge_unparseable" and entry["index"] == 3 and entry["record"]["id"] == rows[3]["id"]
    by_id = {row["id"]: row for _, row in iter_rows(tmp_path / "out")}
    assert by_id[rows[5]["id"]]["chosen_score"] == 0.0
    assert manifest["counts"]["quarantined_by_reason"] == {"judge_unparseable": 1}
    assert manifest["judge"]["unparseable"] == 1 and manifest["judge"]["retried_unparseable"] >= 2


def test_pairwise_cancels_position_bias_and_relabels(dataset, tmp_path, rows):
    with FakeOpenAI(reply=fake_model) as server:
        manifest = score(dataset, tmp_path / "out", config=cfg(server, tmp_path), pairwise=True, relabel=True,
                         quiet=True)
    prefers_rejected = [len(r["rejected"]) > len(r["chosen"]) for r in rows]
    out_rows = [row for _, row in iter_rows(tmp_path / "out")]
    assert manifest["judge"]["relabeled"] == sum(prefers_rejected) > 0
    assert manifest["judge"]["agreement"] == round(1 - sum(prefers_rejected) / len(rows), 4)
    for original, new, swapped in zip(rows, out_rows, prefers_rejected):
        if swapped:
            assert (new["chosen"], new["rejected"]) == (original["rejected"], original["chosen"])
            assert row_meta(new)["relabeled"] is True and new["chosen_score"] == 1.0
        else:
            assert new["id"] == original["id"] and new["chosen_score"] == 1.0

    with FakeOpenAI(reply=lambda body: "A") as biased:  # always the first position: every verdict cancels out
        manifest = score(dataset, tmp_path / "out2", config=cfg(biased, tmp_path, model="biased"), pairwise=True,
                         relabel=True, quiet=True)
    assert manifest["judge"]["verdicts"]["inconsistent"] == len(rows)
    assert manifest["judge"]["consistency"] == 0.0 and manifest["judge"]["relabeled"] == 0
    assert all(row["chosen_score"] == 0.5 for _, row in iter_rows(tmp_path / "out2"))


def test_same_input_and_seed_give_byte_identical_output(dataset, tmp_path):
    outputs = []
    for run in range(2):
        with FakeOpenAI(reply=fake_model) as server:
            config = cfg(server, tmp_path, cache=str(tmp_path / f"cache{run}.sqlite"))
            score(dataset, tmp_path / f"out{run}", config=config, quiet=True)
        files = sorted(p for p in (tmp_path / f"out{run}").rglob("*") if p.suffix in (".arrow", ".jsonl"))
        outputs.append([(p.relative_to(tmp_path / f"out{run}"), p.read_bytes()) for p in files])
    assert outputs[0] == outputs[1] and outputs[0]


def test_dry_run_sends_nothing_and_counts_requests(dataset, tmp_path, rows):
    with FakeOpenAI(reply=fake_model) as server:
        estimate = score(dataset, tmp_path / "out", config=cfg(server, tmp_path, dry_run=True, price_in=1.0,
                                                                price_out=2.0), quiet=True)
        assert server.requests == []
    assert estimate["requests"] == 2 * len(rows) and estimate["cost_estimate_max"] > 0
    assert not (tmp_path / "out").exists()


def test_pointwise_keeps_turns_and_labels_of_v2_rows(tmp_path):
    """A reply stored as turns is judged as its rendered text and written back as turns; an unpaired row keeps its
    label and is scored on the side it has (an undesirable reply too), never turned into a demonstration or a pair."""
    from prefdata.contract.row import make_row

    turns = [{"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]},
             {"role": "tool", "content": "09:00", "tool_call_id": "c1", "name": "clock"},
             {"role": "assistant", "content": "It is nine."}]
    ask = [{"role": "user", "content": "What time is it?"}]
    rows = [make_row(ask, turns, "No idea.", source="t"),
            make_row(ask, "Nine o'clock.", source="t", label=True),
            make_row(ask, rejected="Buy a watch.", source="t", label=False)]
    dataset = write_dataset(tmp_path / "in", rows)
    with FakeOpenAI(reply=fake_model) as server:
        score(dataset, tmp_path / "out", config=cfg(server, tmp_path), quiet=True)
    out = [row for _, row in iter_rows(tmp_path / "out")]
    assert out[0]["chosen_turns"] == rows[0]["chosen_turns"] and out[0]["chosen"] is None
    assert out[0]["chosen_score"] == length_score(section_of_turns(rows[0]))  # the judge read the turns
    assert [r["label"] for r in out[1:]] == [True, False]
    assert out[1]["chosen_score"] == length_score("Nine o'clock.") and out[1]["rejected"] is None
    assert out[2]["rejected_score"] == length_score("Buy a watch.") and out[2]["chosen"] is None


def section_of_turns(row):
    """The turns as the judge sees them: the dschat rendering after the prompt (built here from the contract's
    renderer, which tests/test_render.py checks on its own)."""
    from prefdata.contract.render import render

    return render(row["prompt"], row["chosen_turns"])[len(render(row["prompt"])):].strip()


def test_a_budget_stop_waits_for_the_sibling_request_already_sent(tmp_path, rows):
    """A pair is judged with two requests at once. When --max-cost refuses the second, the first is already at the
    server: the stopped run waits for its reply and caches it, so the next run does not pay for it again."""
    from prefdata.llm.accounting import BudgetExceeded
    from prefdata.llm.cache import open_cache

    dataset = write_dataset(tmp_path / "in", rows[:1])
    # only output tokens cost: each request reserves max_tokens (8); a cap of 12 lets exactly one through
    limits = {"price_in": 0.0, "price_out": 1_000_000.0, "max_tokens": 8, "concurrency": 2}
    with FakeOpenAI(reply=fake_model, latency=0.5) as server:
        with pytest.raises(BudgetExceeded, match="max-cost 12 reached"):
            score(dataset, tmp_path / "out", config=cfg(server, tmp_path, max_cost=12, **limits), quiet=True)
        assert len(server.requests) == 1
        cache = open_cache(str(tmp_path / "cache.sqlite"))
        assert len(cache) == 1  # the reply that was paid for is kept
        cache.close()
        score(dataset, tmp_path / "out", config=cfg(server, tmp_path, **limits), quiet=True)
        assert len(server.requests) == 2  # the second run asks only for the reply it lacked
