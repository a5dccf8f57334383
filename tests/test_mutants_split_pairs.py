"""Tests that kill mutants of `prefdata/jobs/split_pairs.py` the suite let survive (issue #15): the pair's meta
(what makes both answers traceable), the manifest's `pairing` counts, the quarantine message of a left-out answer,
and the refusals of bad options. Expected values are worked out from the rows written here."""

from __future__ import annotations

import pytest
from test_split_pairs import ranked, run

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import row_meta
from prefdata.jobs.split_pairs import check_policy


def test_a_pair_keeps_both_answers_ids_scores_and_meta(tmp_path):
    rows = ranked("Name a bread.", [2.0, 5.0])
    manifest, out, _ = run(tmp_path, rows, pairs="all")
    (pair,) = [r for r in out if r["rejected"] is not None]
    meta = row_meta(pair)
    best, worst = rows[1], rows[0]
    assert meta["paired_from"] == [best["id"], worst["id"]] and meta["margin"] == 3.0
    assert meta["pairing"]["chosen"] == {"id": best["id"], "score": 5.0, "meta": row_meta(best)}
    assert meta["pairing"]["rejected"] == {"id": worst["id"], "score": 2.0, "meta": row_meta(worst)}
    assert manifest["pairing"]["prompts"] == 1 and manifest["pairing"]["not_paired"] == 0


def test_without_a_policy_a_lone_scored_row_is_counted_as_a_demonstration(tmp_path):
    rows = ranked("Name a cheese.", [1.0, 3.0]) + ranked("Name a fruit.", [4.0])
    manifest, _, _ = run(tmp_path, rows)
    assert manifest["pairing"]["lone_as_demonstration"] == 1 and manifest["pairing"]["rows_in_pairs"] == 2


def test_best_worst_says_why_a_middle_answer_is_left_out(tmp_path):
    rows = ranked("Name a river.", [1.0, 2.0, 3.0])
    _, _, quarantine = run(tmp_path, rows, pairs="best-worst")
    assert [line["reason"] for line in quarantine] == ["not_paired"]
    assert "--pairs best-worst uses only the best and the worst answer" in quarantine[0]["message"]


@pytest.mark.parametrize("pairs, margin, field, text", [
    ("most", 0.0, "pairs", "unknown pairing policy 'most'; choose one of all, best-worst, best-vs-rest"),
    ("all", -1.0, "min_margin", "must be a finite number >= 0, got -1.0"),
    ("all", float("inf"), "min_margin", "must be a finite number >= 0, got inf"),
    (None, 0.5, "min_margin", "--min-margin needs --pairs"),
])
def test_bad_pairing_options_are_one_line_naming_the_option(pairs, margin, field, text):
    with pytest.raises(PrefdataError) as error:
        check_policy(pairs, margin)
    assert error.value.field == field and text in str(error.value)
