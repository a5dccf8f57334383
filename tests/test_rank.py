"""`rank`: pointwise multi-aspect judging, pairwise merge sort (comparisons counted), panels (pointwise and pairwise)
with Fleiss' kappa, against the fake server. The reward-model ranker is in tests/test_rank_reward.py (it needs torch)."""

from __future__ import annotations

import json

import pytest
from fake_openai_server import FakeOpenAI
from llm_support import section, stable_int
from support import write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row, row_meta
from prefdata.jobs.rank import rank, ranks
from prefdata.jobs.rank_judges import agreement, fleiss_kappa, merge_sort_worst_case
from prefdata.llm.engine import LLMConfig
from prefdata.storage.dataset import iter_rows

ASPECTS = ("helpfulness", "honesty", "harmlessness", "instruction_following")
PROMPTS = ("How do owls see at night?", "Why is the sky blue?", "What is a prime number?")


def user(text):
    return [{"role": "user", "content": text}]


def answers_dir(tmp_path, k=4, prompts=PROMPTS, extra=()):
    """K answers per prompt, shaped as `generate` writes them (one group per prompt), plus ``extra`` rows."""
    rows = [make_row(user(p), f"Answer {i} to {p}" + " and more" * i, source="generate", group=f"g{n}",
                     meta={"generate": {"answer_index": i}})
            for n, p in enumerate(prompts) for i in range(k)]
    return write_dataset(tmp_path / "answers", rows + list(extra)), rows


def rating(model, aspect, answer):
    """The fake judges' rating: 1-5, a function of judge, aspect and answer only."""
    return 1 + stable_int(f"{model}|{aspect}|{answer}") % 5


def aspect_judge(body):
    text = body["messages"][0]["content"]
    aspect = next(a for a in ASPECTS if f"Rate only {a.replace('_', ' ')}:" in text)
    answer = section(text, "Assistant's reply:\n", "\n\nRating scale")
    return str(rating(body["model"], aspect, answer))


def longer_is_better(body):
    text = body["messages"][0]["content"]
    a, b = section(text, "Reply A:\n", "\n\nReply B:"), section(text, "Reply B:\n", "\n\nAnswer with exactly")
    return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"


def cfg(server, tmp_path, **overrides):
    settings = {"model": "unused", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"), "concurrency": 8}
    return LLMConfig(**{**settings, **overrides})


def ranked_rows(out):
    return [row for _, row in iter_rows(out)]


def test_ranks_are_competition_ranks():
    assert ranks([9, 7, 9, 3]) == [1, 3, 1, 4] and ranks([]) == []


@pytest.mark.parametrize("rule", ["mean", "min"])
def test_pointwise_aspects_combined_by_the_stated_rule(tmp_path, rule):
    pair = make_row(user("A pair stays a pair."), "yes", "no", source="t")
    directory, rows = answers_dir(tmp_path, extra=[pair])
    with FakeOpenAI(reply=aspect_judge) as server:
        manifest = rank(directory, tmp_path / "out", by="judge", config=cfg(server, tmp_path), judges=["judge-a"],
                        combine=rule, quiet=True)
        assert len(server.requests) == len(rows) * len(ASPECTS)
        assert all(r["body"]["temperature"] == 0.0 for r in server.requests)
    out = ranked_rows(tmp_path / "out")
    assert [r["id"] for r in out] == [r["id"] for r in rows] + [pair["id"]]  # ids and order unchanged
    assert out[-1] == pair
    for row in out[:-1]:
        expected = {a: rating("judge-a", a, row["chosen"]) for a in ASPECTS}
        combined = min(expected.values()) if rule == "min" else sum(expected.values()) / len(ASPECTS)
        meta = row_meta(row)["rank"]
        assert row["chosen_score"] == combined and meta["aspects"] == expected
        assert meta["by"] == "judge" and meta["model"] == "judge-a" and meta["combine"] == rule
        assert set(meta["template_sha256"]) == set(ASPECTS) and meta["of"] == 4
        siblings = [r["chosen_score"] for r in out[:-1] if r["group"] == row["group"]]
        assert meta["rank"] == 1 + sum(s > combined for s in siblings)
        assert row_meta(row)["generate"] == {"answer_index": row_meta(row)["generate"]["answer_index"]}  # kept
    assert manifest["rank"]["unranked"] == 1 and manifest["counts"]["records_in"] == len(rows) + 1


def test_unreadable_rating_is_asked_again_then_quarantined(tmp_path):
    directory, rows = answers_dir(tmp_path)
    hopeless = rows[1]["chosen"]

    def judge(body):
        return "Quite good, I think." if f"\n{hopeless}\n" in body["messages"][0]["content"] else aspect_judge(body)

    with FakeOpenAI(reply=judge) as server:
        manifest = rank(directory, tmp_path / "out", by="judge", config=cfg(server, tmp_path), judges=["j"],
                        aspects=["honesty"], quiet=True)
    assert manifest["counts"]["quarantined_by_reason"] == {"judge_unparseable": 1}
    line = json.loads((tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()[0])
    assert line["file"].endswith("answers/train") and line["index"] == 1
    survivors = [r for r in ranked_rows(tmp_path / "out") if r["group"] == rows[1]["group"]]
    assert len(survivors) == 3 and all(row_meta(r)["rank"]["of"] == 3 for r in survivors)


def test_pairwise_sorts_with_few_comparisons(tmp_path):
    k = 8
    directory, rows = answers_dir(tmp_path, k=k, prompts=PROMPTS[:1])
    with FakeOpenAI(reply=longer_is_better) as server:
        manifest = rank(directory, tmp_path / "out", by="pairwise", config=cfg(server, tmp_path), judges=["j"],
                        quiet=True)
        asked = len(server.requests)
    comparisons = manifest["rank"]["comparisons"]
    assert asked == 2 * comparisons  # both orders, every time
    assert comparisons <= merge_sort_worst_case(k) == 17 < k * (k - 1) // 2 == manifest["rank"]["comparisons_all_pairs"]
    out = ranked_rows(tmp_path / "out")
    # answer i is i * len(" and more") longer: the judge's order is the reverse of i; scores K-1 … 0
    assert [r["chosen_score"] for r in out] == [float(i) for i in range(k)]
    assert [row_meta(r)["rank"]["rank"] for r in out] == [k - i for i in range(k)]
    verdicts = manifest["rank"]["verdicts"]
    assert verdicts["first"] + verdicts["second"] == comparisons and manifest["rank"]["consistency"] == 1.0
    assert manifest["rank"]["tie_policy"].startswith("a tie, an inconsistent")


def test_pairwise_position_bias_and_ties_give_equal_scores(tmp_path):
    directory, _ = answers_dir(tmp_path, k=4, prompts=PROMPTS[:1])
    with FakeOpenAI(reply=lambda body: "A") as server:  # always the first reply: inconsistent in both orders
        manifest = rank(directory, tmp_path / "out", by="pairwise", config=cfg(server, tmp_path), judges=["j"],
                        quiet=True)
    assert {r["chosen_score"] for r in ranked_rows(tmp_path / "out")} == {3.0}
    assert manifest["rank"]["verdicts"]["inconsistent"] == manifest["rank"]["comparisons"]
    assert manifest["rank"]["consistency"] == 0.0
    same_length = [make_row(user("Q?"), text, source="generate") for text in ("aaaa", "bbbb", "cc")]
    tied = write_dataset(tmp_path / "tied", same_length)
    with FakeOpenAI(reply=longer_is_better) as server:
        rank(tied, tmp_path / "out2", by="pairwise", config=cfg(server, tmp_path), judges=["j"], quiet=True)
    scores = {r["chosen"]: r["chosen_score"] for r in ranked_rows(tmp_path / "out2")}
    assert scores["aaaa"] == scores["bbbb"] > scores["cc"]


def test_fleiss_kappa_matches_the_worked_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories; kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    subjects = [[category for category, count in enumerate(row) for _ in range(count)] for row in table]
    assert fleiss_kappa(subjects) == pytest.approx(0.2099, abs=1e-4)
    assert agreement([3, 3, 5]) == pytest.approx(1 / 3) and agreement([4]) is None
    assert fleiss_kappa([[1, 1], [1, 1]]) is None  # one category only: undefined


def test_panel_reports_agreement_per_row_and_kappa_per_run(tmp_path):
    directory, rows = answers_dir(tmp_path)
    judges = ["j1", "j2", "j3"]
    with FakeOpenAI(reply=aspect_judge) as server:
        manifest = rank(directory, tmp_path / "out", by="panel", config=cfg(server, tmp_path), judges=judges,
                        aspects=["helpfulness"], quiet=True)
        assert {r["body"]["model"] for r in server.requests} == set(judges)
    subjects = []
    for row in ranked_rows(tmp_path / "out"):
        given = [rating(j, "helpfulness", row["chosen"]) for j in judges]
        subjects.append(given)
        meta = row_meta(row)["rank"]
        assert row["chosen_score"] == pytest.approx(sum(given) / 3)
        assert {j: meta["judges"][j]["score"] for j in judges} == dict(zip(judges, map(float, given)))
        same = sum(a == b for i, a in enumerate(given) for j, b in enumerate(given) if i != j)
        assert meta["agreement"] == pytest.approx(same / 6)
    assert manifest["rank"]["fleiss_kappa"] == round(fleiss_kappa(subjects), 4)
    assert manifest["rank"]["judges"] == judges and manifest["rank"]["answers_rated_by_all"] == len(rows)


def shorter_is_better(body):
    verdict = longer_is_better(body)
    return {"A": "B", "B": "A"}.get(verdict, verdict)


def test_pairwise_panel_takes_the_majority_and_reports_agreement(tmp_path):
    k = 4
    directory, rows = answers_dir(tmp_path, k=k)
    judges = ["j1", "j2", "contrarian"]

    def panel(body):
        return shorter_is_better(body) if body["model"] == "contrarian" else longer_is_better(body)

    with FakeOpenAI(reply=panel) as server:
        manifest = rank(directory, tmp_path / "out", by="pairwise", config=cfg(server, tmp_path), judges=judges,
                        quiet=True)
        asked = len(server.requests)
        assert {r["body"]["model"] for r in server.requests} == set(judges)
    meta = manifest["rank"]
    assert asked == 2 * len(judges) * meta["comparisons"]  # every judge, both orders, every comparison
    assert meta["judges"] == judges and meta["panel_rule"].startswith("a comparison's verdict is the one more than half")
    assert meta["panel_verdicts"]["equal"] == 0 and meta["consistency"] == 1.0
    # two judges against one on every comparison: P_i = (2*1 + 0) / (3*2) = 1/3, and kappa over those comparisons
    assert meta["mean_agreement"] == round(1 / 3, 4)
    subjects = [[0, 0, 1] if c == "first" else [1, 1, 0] for c in ["first"] * meta["panel_verdicts"]["first"]
                + ["second"] * meta["panel_verdicts"]["second"]]
    assert meta["fleiss_kappa"] == round(fleiss_kappa(subjects), 4) < 0
    out = ranked_rows(tmp_path / "out")
    for row in out:  # the majority (longer is better) sets the order: answer i scores i
        detail = row_meta(row)["rank"]
        assert row["chosen_score"] == float(row_meta(row)["generate"]["answer_index"])
        assert detail["agreement"] == round(1 / 3, 4) and set(detail["judges"]) == set(judges)
        assert detail["judges"]["j1"]["wins"] == detail["wins"] == detail["compared_with"] - detail["judges"][
            "contrarian"]["wins"]


def test_a_split_pairwise_panel_cannot_tell_answers_apart(tmp_path):
    directory, _ = answers_dir(tmp_path, k=4, prompts=PROMPTS[:1])

    def panel(body):
        return shorter_is_better(body) if body["model"] == "b" else longer_is_better(body)

    with FakeOpenAI(reply=panel) as server:
        manifest = rank(directory, tmp_path / "out", by="pairwise", config=cfg(server, tmp_path), judges=["a", "b"],
                        quiet=True)
    assert manifest["rank"]["panel_verdicts"] == {"first": 0, "second": 0, "equal": manifest["rank"]["comparisons"]}
    assert manifest["rank"]["mean_agreement"] == 0.0
    assert {r["chosen_score"] for r in ranked_rows(tmp_path / "out")} == {3.0}  # so split pairs none of them


def test_the_data_card_carries_the_panels_kappa_through_split(tmp_path):
    from prefdata.jobs.split import split_datasets
    from prefdata.jobs.stats import write_data_card

    directory, _ = answers_dir(tmp_path)
    with FakeOpenAI(reply=aspect_judge) as server:
        ranked = rank(directory, tmp_path / "ranked", by="panel", config=cfg(server, tmp_path),
                      judges=["j1", "j2", "j3"], aspects=["helpfulness"], quiet=True)
    kappa = ranked["rank"]["fleiss_kappa"]
    split = split_datasets([tmp_path / "ranked"], tmp_path / "split", ratio=(0, 1, 0), eval_fraction=0,
                           pairs="all", quiet=True)
    assert split["rankings"] == [{"input": str(tmp_path / "ranked"), **ranked["rank"]}]
    for where in ("ranked", "split"):
        stats = write_data_card(tmp_path / where)
        card = (tmp_path / where / "README.md").read_text()
        assert stats["rankings"][0]["fleiss_kappa"] == kappa
        row = next(line for line in card.splitlines() if line.startswith(f"| {tmp_path / 'ranked'} | panel |"))
        assert row.split(" | ")[2:6] == ["j1, j2, j3", str(len(PROMPTS)), str(len(PROMPTS) * 4), f"{kappa:.3f}"]
        assert "Fleiss' P_i over each judge's combined rating" in card
    assert "## Ranking" not in (write_data_card(directory), (directory / "README.md").read_text())[1]


def test_wrong_ranker_settings_are_one_line_errors(tmp_path):
    directory, _ = answers_dir(tmp_path)
    config = LLMConfig(model="j", base_url="http://127.0.0.1:9/v1")
    cases = [({"by": "panel", "judges": ["only-one"], "config": config}, "at least two judges"),
             ({"by": "judge", "judges": ["a", "b"], "config": config}, "takes one judge; several are --by panel"),
             ({"by": "judge", "judges": [], "config": config}, "needs a judge"),
             ({"by": "judge", "judges": ["a"], "config": config, "aspects": ["wit"]}, "no template for aspect"),
             ({"by": "reward-model"}, "needs --reward-model"),
             ({"by": "vibes"}, "unknown ranker")]
    for kwargs, message in cases:
        with pytest.raises(PrefdataError, match=message):
            rank(directory, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_dry_run_counts_requests_and_sends_none(tmp_path):
    directory, rows = answers_dir(tmp_path)
    with FakeOpenAI(reply=aspect_judge) as server:
        cold = rank(directory, tmp_path / "dry", by="judge", config=cfg(server, tmp_path, dry_run=True), judges=["j"])
        assert server.requests == [] and not (tmp_path / "dry").exists()
        assert cold["requests"] == len(rows) * len(ASPECTS) and cold["cached_hits"] == 0
        rank(directory, tmp_path / "out", by="judge", config=cfg(server, tmp_path), judges=["j"], quiet=True)
        warm = rank(directory, tmp_path / "dry", by="judge", config=cfg(server, tmp_path, dry_run=True), judges=["j"])
        assert warm["requests"] == 0 and warm["cached_hits"] == len(rows) * len(ASPECTS)
        pairwise = rank(directory, tmp_path / "dry", by="pairwise", config=cfg(server, tmp_path, dry_run=True),
                        judges=["j"])
        assert pairwise["requests"] == len(PROMPTS) * 2 * merge_sort_worst_case(4)
        sent = len(server.requests)
        two = rank(directory, tmp_path / "dry", by="pairwise", config=cfg(server, tmp_path, dry_run=True),
                   judges=["j", "k"])
        assert two["requests"] == 2 * pairwise["requests"] and len(server.requests) == sent


def test_cli_panel(tmp_path):
    import subprocess

    from llm_support import env_for, prefdata_cmd

    directory, rows = answers_dir(tmp_path)
    with FakeOpenAI(reply=aspect_judge) as server:
        done = subprocess.run(prefdata_cmd("rank", str(directory), "--out", str(tmp_path / "out"), "--by", "panel",
                                           "--model", "j1", "--model", f"j2={server.url}", "--aspects", "honesty",
                                           "--cache", str(tmp_path / "c.sqlite"), "-q"),
                              capture_output=True, text=True, env=env_for(server), timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{len(rows)} records in -> {len(rows)} rows" in done.stdout and f"{2 * len(rows)} requests" in done.stdout
    manifest = json.loads((tmp_path / "out" / "prefdata.json").read_text())
    assert manifest["options"]["model"] == ["j1", f"j2=127.0.0.1:{server.port}"]  # a host, never the URL
    assert manifest["rank"]["judges"] == ["j1", "j2"] and "fleiss_kappa" in manifest["rank"]
