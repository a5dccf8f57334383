"""Rankings to pairs at split time: the policies give the documented counts, ties and margins make no pair, the
chosen side always scores higher, and every scored row is accounted for in the manifest."""

from __future__ import annotations

import json
from math import comb

import pytest
from split_helpers import user, write_dataset

from prefdata.cli import main
from prefdata.contract.row import make_row, row_meta
from prefdata.jobs.split import split_datasets
from prefdata.jobs.split_pairs import comparisons
from prefdata.storage.dataset import iter_rows


def ranked(prompt: str, scores: list[float]) -> list[dict]:
    """K scored answers to one prompt, as `generate` writes them (meta with rank and model)."""
    return [make_row(user(prompt), f"Answer {k} to {prompt}", source="generated", chosen_score=score,
                     meta={"rank": k, "model": f"m{k % 2}"}) for k, score in enumerate(scores)]


def run(tmp_path, rows, **options):
    source = write_dataset(tmp_path / "in", {"train": rows})
    manifest = split_datasets([source], tmp_path / "out", ratio=(1, 1, 1), eval_fraction=0.0, quiet=True, **options)
    out = [row for _, row in iter_rows(tmp_path / "out")]
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").open()]
    return manifest, out, quarantine


@pytest.mark.parametrize(("policy", "expected"), [("all", comb(4, 2)), ("best-worst", 1), ("best-vs-rest", 3)])
def test_policies_give_documented_counts_and_chosen_scores_higher(tmp_path, policy, expected):
    rows = ranked("Name a soup.", [1.0, 4.0, 2.0, 3.0])
    manifest, out, quarantine = run(tmp_path, rows, pairs=policy)
    made = [r for r in out if r["rejected"] is not None]
    assert len(made) == expected == manifest["pairing"]["pairs_made"]
    assert all(r["chosen_score"] > r["rejected_score"] for r in made)
    assert len({r["group"] for r in made}) == 1  # one prompt: one group, one phase
    by_id = {r["id"]: r for r in rows}
    for r in made:
        info = row_meta(r)["pairing"]
        assert info["policy"] == policy
        assert by_id[info["chosen"]["id"]]["chosen"] == r["chosen"] and info["chosen"]["score"] == r["chosen_score"]
        assert by_id[info["rejected"]["id"]]["chosen"] == r["rejected"]
        assert info["rejected"]["meta"]["rank"] == row_meta(by_id[info["rejected"]["id"]])["rank"]
    if policy == "best-worst":
        assert (made[0]["chosen_score"], made[0]["rejected_score"]) == (4.0, 1.0)
    counts = manifest["pairing"]
    assert counts["scored_rows"] == 4 == counts["rows_in_pairs"] + counts["not_paired"]
    assert counts["not_paired"] == (2 if policy == "best-worst" else 0)
    assert [q["reason"] for q in quarantine] == ["not_paired"] * counts["not_paired"]
    assert manifest["counts"]["records_in"] == manifest["counts"]["records_out"] + manifest["counts"]["quarantined"]
    assert not [r for r in out if r["rejected"] is None]  # with --pairs no answer is written as a demonstration


def test_min_margin_makes_ties_and_ties_make_no_pair(tmp_path):
    rows = ranked("Name a tree.", [5.0, 4.5, 3.0, 3.0]) + ranked("Name a bird.", [2.0, 1.8])
    manifest, out, quarantine = run(tmp_path, rows, pairs="all", min_margin=1.0)
    made = {(r["chosen_score"], r["rejected_score"]) for r in out if r["rejected"] is not None}
    # tree: 5-3 twice, 4.5-3 twice make pairs; 5-4.5 (0.5) and 3-3 are ties; bird: 2-1.8 is a tie
    assert made == {(5.0, 3.0), (4.5, 3.0)}
    assert manifest["pairing"]["pairs_made"] == 4 and manifest["pairing"]["tied_comparisons"] == 3
    left = sorted(q["record"]["id"] for q in quarantine)
    assert left == sorted(r["id"] for r in rows[4:])  # both bird answers: in no pair
    assert all(q["reason"] == "not_paired" and "min-margin" in q["message"] for q in quarantine)


def test_best_vs_rest_skips_answers_tied_with_the_best(tmp_path):
    rows = ranked("Name a fish.", [3.0, 3.0, 1.0])
    manifest, out, _ = run(tmp_path, rows, pairs="best-vs-rest")
    made = [r for r in out if r["rejected"] is not None]
    assert len(made) == 1 and made[0]["rejected_score"] == 1.0
    assert manifest["pairing"]["tied_comparisons"] == 1 and manifest["pairing"]["not_paired"] == 1


def test_comparisons_by_policy():
    assert comparisons(1, "all") == [] and comparisons(3, "all") == [(0, 1), (0, 2), (1, 2)]
    assert comparisons(3, "best-worst") == [(0, 2)] and comparisons(3, "best-vs-rest") == [(0, 1), (0, 2)]


def test_pairing_does_not_depend_on_row_order(tmp_path):
    rows = ranked("Name a river.", [1.0, 2.0, 2.0, 5.0]) + ranked("Name a hill.", [0.5, 0.7])
    _, first, _ = run(tmp_path / "a", rows, pairs="best-worst")
    _, second, _ = run(tmp_path / "b", rows[::-1], pairs="best-worst")
    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second)


def test_cli_pairs_and_bad_margin(tmp_path, capsys):
    source = write_dataset(tmp_path / "in", {"train": ranked("Name a cat.", [1.0, 2.0, 3.0])})
    main(["split", str(source), "--out", str(tmp_path / "o"), "--pairs", "best-vs-rest", "--min-margin", "0.5", "-q"])
    assert sum(1 for _ in iter_rows(tmp_path / "o")) == 2
    for args in (["--pairs", "random"], ["--min-margin", "-1", "--pairs", "all"], ["--min-margin", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["split", str(source), "--out", str(tmp_path / "x"), *args])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(("prefdata: error:", "Usage:")) and "Traceback" not in err


def test_answers_with_tool_turns_pair_as_turns(tmp_path):
    call = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]
    turns = [{"role": "assistant", "content": "", "tool_calls": call},
             {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "weather"},
             {"role": "assistant", "content": "It is sunny."}]
    rows = [make_row(user("Weather?"), turns, source="generated", chosen_score=2.0),
            make_row(user("Weather?"), "No idea.", source="generated", chosen_score=1.0)]
    _, out, _ = run(tmp_path, rows, pairs="best-worst")
    (made,) = out
    assert made["chosen"] is None and made["chosen_turns"] == rows[0]["chosen_turns"] and made["rejected"] == "No idea."
