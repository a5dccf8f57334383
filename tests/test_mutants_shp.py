"""Tests that kill mutants of `prefdata/formats/shp.py` the suite let survive (issue #15): each refusal's reason,
field and message, the score ratio computed when the record has none, and the per-post count. Records are written
here; expected values follow from them by hand."""

from __future__ import annotations

import math

import pytest

from prefdata.contract.errors import RowError
from prefdata.formats.shp import PostCap, shp_pair


def record(**changes) -> dict:
    base = {"post_id": "p1", "history": "How do I keep basil fresh?", "human_ref_A": "In water, like flowers.",
            "human_ref_B": "In the fridge.", "score_A": 10, "score_B": 4, "labels": 1, "score_ratio": 2.5}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize("changes, reason, field, message", [
    ({"score_A": "ten"}, "schema_violation", "score_A", "'ten' is not a finite number"),
    ({"labels": 2}, "bad_label", "labels", "labels is 2, not 0 or 1"),
    ({"labels": 0}, "label_conflict", "labels", "labels=0 but score_A=10, score_B=4"),
    ({"score_A": None, "score_B": None, "labels": None}, "missing_field", "labels",
     "no 'labels' and no score_A/score_B to tell which reply is preferred"),
])
def test_refusals_name_reason_field_and_message(changes, reason, field, message):
    with pytest.raises(RowError) as error:
        shp_pair(record(**changes), "askcooking")
    assert (error.value.reason, error.value.field, error.value.message) == (reason, field, message)


def test_score_ratio_is_computed_from_the_scores_when_the_record_has_none():
    assert shp_pair(record(score_ratio=None), "askcooking").score_ratio == 10 / 4
    assert shp_pair(record(score_ratio=None, score_B=0), "askcooking").score_ratio == math.inf
    assert shp_pair(record(score_ratio=None, score_A=4, score_B=10, labels=0), "askcooking").score_ratio == 10 / 4


def test_post_cap_counts_every_pair_offered_per_post():
    cap = PostCap(limit=1)
    for index, ratio in enumerate([2.0, 3.0, 1.5]):
        cap.offer("p1", ratio, index)
    cap.offer("p2", None, 3)
    assert cap.pairs_per_post == {"p1": 3, "p2": 1}
    assert cap.kept() == {1, 3}
