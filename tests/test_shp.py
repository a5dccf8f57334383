"""SHP: the card's example row, and authored rows for ties, the score-ratio filter, the per-post cap, missing columns."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import row_meta
from prefdata.jobs.download import download_shp
from prefdata.storage.dataset import iter_rows


def _record(post: str, a: str, b: str, score_a: int, score_b: int, **extra) -> dict:
    """An SHP-shaped record of my own; ``score_ratio`` and ``labels`` computed as the dataset defines them."""
    record = {"post_id": post, "domain": "askcooking_train", "upvote_ratio": 0.9, "history": f"Question of post {post}?",
              "c_root_id_A": f"{post}-{a}", "c_root_id_B": f"{post}-{b}", "score_A": score_a, "score_B": score_b,
              "human_ref_A": f"Answer {a}", "human_ref_B": f"Answer {b}", "labels": int(score_a > score_b),
              "score_ratio": max(score_a, score_b) / max(min(score_a, score_b), 1)}
    record.update(extra)
    return record


def _copy(root: Path, files: dict[str, list[dict]]) -> Path:
    for relative, records in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return root


def _rows(directory: Path) -> list[tuple[str, dict]]:
    return list(iter_rows(directory))


def test_card_example_row(shp_card_example, tmp_path):
    card = json.loads(shp_card_example.read_text(encoding="utf-8"))
    copy = _copy(tmp_path / "hub", {"askculinary/train.json": [card]})
    manifest = download_shp(tmp_path / "out", from_path=copy, quiet=True)
    [(split, row)] = _rows(tmp_path / "out")
    assert split == "train" and card["labels"] == 1
    assert row["chosen"] == card["human_ref_A"] and row["rejected"] == card["human_ref_B"]
    assert (row["chosen_score"], row["rejected_score"]) == (card["score_A"], card["score_B"])
    assert row["prompt"] == [{"role": "user", "content": card["history"]}]
    assert row["group"] == card["post_id"] and row["source"] == "shp/askculinary"
    assert row_meta(row) == {"domain": "askculinary", "post_id": card["post_id"], "upvote_ratio": card["upvote_ratio"],
                             "score_ratio": card["score_ratio"], "chosen_comment_id": card["c_root_id_A"],
                             "rejected_comment_id": card["c_root_id_B"]}
    assert manifest["warnings"] == [f"{copy / 'askculinary' / n}.json is missing: split {n} of askculinary not imported"
                                    for n in ("validation", "test")]


def test_labels_zero_means_b_preferred_and_ties_and_conflicts_are_quarantined(tmp_path):
    records = [
        _record("p1", "x", "y", 3, 12),  # labels 0: B chosen
        _record("p2", "x", "y", 7, 7),  # tie
        _record("p3", "x", "y", 20, 4, labels=0),  # the label contradicts the scores
        _record("p4", "x", "y", 20, 4, labels=2),
    ]
    copy = _copy(tmp_path / "hub", {"askcooking/test.json": records})
    manifest = download_shp(tmp_path / "out", from_path=copy, quiet=True)
    [(split, row)] = _rows(tmp_path / "out")
    assert split == "test" and row["chosen"] == "Answer y" and row["chosen_score"] == 12
    assert row_meta(row)["chosen_comment_id"] == "p1-y"
    assert manifest["counts"]["quarantined_by_reason"] == {"bad_label": 1, "label_conflict": 1, "tie": 1}


def _cap_records() -> list[dict]:
    # Post "a" has 7 pairs split in two runs (it reappears after post "b"), post "b" has 3; ratios vary.
    scores = {"a": [(10, 2), (30, 3), (9, 3), (8, 8), (50, 5), (4, 3), (60, 3), (21, 7)], "b": [(6, 2), (40, 2), (5, 4)]}
    order = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("a", 3), ("b", 1), ("a", 4), ("a", 5), ("b", 2), ("a", 6),
             ("a", 7)]
    return [_record(post, f"c{i}", f"d{i}", *scores[post][i]) for post, i in order]


@pytest.mark.parametrize("cap,min_ratio", [(2, 2.0), (3, 0.0), (0, 2.0), (5, 3.0)])
def test_score_ratio_filter_and_per_post_cap(tmp_path, cap, min_ratio):
    records = _cap_records()
    copy = _copy(tmp_path / "hub", {"askcooking/train.json": records})
    manifest = download_shp(tmp_path / "out", from_path=copy, quiet=True, min_score_ratio=min_ratio,
                            max_pairs_per_post=cap)
    # Expected, computed here: drop ties, then low ratios, then keep each post's `cap` largest ratios (earlier first).
    ratio = {i: max(r["score_A"], r["score_B"]) / min(r["score_A"], r["score_B"]) for i, r in enumerate(records)}
    ties = {i for i, r in enumerate(records) if r["score_A"] == r["score_B"]}
    low = {i for i in ratio if i not in ties and ratio[i] < min_ratio}
    eligible = [i for i in ratio if i not in ties | low]
    kept = set(eligible)
    if cap:
        kept = set()
        for post in {records[i]["post_id"] for i in eligible}:
            ranked = sorted((i for i in eligible if records[i]["post_id"] == post), key=lambda i: (-ratio[i], i))
            kept |= set(ranked[:cap])
    expected = Counter({"tie": len(ties), "low_score_ratio": len(low), "over_post_cap": len(eligible) - len(kept)})
    assert manifest["counts"]["quarantined_by_reason"] == {k: v for k, v in sorted(expected.items()) if v}
    got = [row_meta(row)["chosen_comment_id"] for _, row in _rows(tmp_path / "out")]
    want = [records[i]["c_root_id_A"] if records[i]["labels"] else records[i]["c_root_id_B"] for i in sorted(kept)]
    assert got == want  # file order kept
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(q["line"] for q in quarantine) == sorted(i + 1 for i in set(ratio) - kept)


def test_missing_optional_columns_import_and_unapplied_filter_is_reported(tmp_path):
    bare = [{"history": "Why is the sky blue?", "human_ref_A": "Scattering.", "human_ref_B": "Paint.", "labels": 1},
            {"history": "Best pan?", "human_ref_A": "Any.", "human_ref_B": "Cast iron.", "labels": 0}]
    copy = _copy(tmp_path / "hub", {"askscience/validation.json": bare})
    manifest = download_shp(tmp_path / "out", from_path=copy, quiet=True)
    rows = [row for _, row in _rows(tmp_path / "out")]
    assert [r["chosen"] for r in rows] == ["Scattering.", "Cast iron."]
    assert all(r["chosen_score"] is None and r["source"] == "shp/askscience" for r in rows)
    assert [row_meta(r) for r in rows] == [{"domain": "askscience"}] * 2
    warnings = " ".join(manifest["warnings"])
    assert "--min-score-ratio not applied to 2 record(s)" in warnings
    assert "without post_id" in warnings
    assert manifest["counts"]["quarantined"] == 0


def test_missing_required_column_is_quarantined_not_a_crash(tmp_path):
    copy = _copy(tmp_path / "hub", {"askcooking/train.json": [{"history": "Q", "human_ref_A": "A", "labels": 1}]})
    manifest = download_shp(tmp_path / "out", from_path=copy, quiet=True)
    assert manifest["counts"]["quarantined_by_reason"] == {"missing_field": 1}


def test_domains_option_and_unknown_domain(tmp_path):
    copy = _copy(tmp_path / "hub", {"askcooking/train.json": _cap_records()[:2],
                                    "askphysics/test.json": [_record("q", "m", "n", 9, 3, domain="askphysics_test")]})
    manifest = download_shp(tmp_path / "out", domains=["askphysics"], from_path=copy, quiet=True)
    assert {row["source"] for _, row in _rows(tmp_path / "out")} == {"shp/askphysics"}
    assert list(manifest["splits"]) == ["test"]
    with pytest.raises(PrefdataError, match="unknown SHP domain.*askhistory.*available: askcooking, askphysics"):
        download_shp(tmp_path / "out2", domains=["askhistory"], from_path=copy, quiet=True)


def test_byte_identical_across_runs(tmp_path, shp_card_example):
    records = _cap_records() + [json.loads(shp_card_example.read_text(encoding="utf-8"))]
    copy = _copy(tmp_path / "hub", {"askcooking/train.json": records, "askcooking/test.json": records[:3]})
    for name in ("a", "b"):
        download_shp(tmp_path / name, from_path=copy, quiet=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.arrow"))
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
