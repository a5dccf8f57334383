"""Issue #15: every quarantined record is written to `quarantine.jsonl`, whatever its reason.

The manifest's reason counts alone cannot tell whether the lines were written; these tests read the file back and
compare it with the records the test itself wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefdata.jobs.download import download_shp


def shp_record(post: str, score_a: int, score_b: int, labels: object) -> dict:
    """An SHP-shaped record of my own; ``labels`` given explicitly so it can contradict the scores."""
    return {"post_id": post, "domain": "askcooking_train", "history": f"Question of post {post}?",
            "c_root_id_A": f"{post}-a", "c_root_id_B": f"{post}-b", "score_A": score_a, "score_B": score_b,
            "human_ref_A": f"Answer A of {post}", "human_ref_B": f"Answer B of {post}", "labels": labels}


def quarantine_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_shp_reason_has_its_line_with_the_source_record(tmp_path):
    records = [
        shp_record("ok", 9, 3, 1),
        shp_record("tie", 7, 7, 1),
        shp_record("conflict", 20, 4, 0),  # labels says B, the scores say A
        shp_record("label", 20, 4, 2),
        shp_record("conflict2", 2, 30, 1),
    ]
    expected_reasons = {2: "tie", 3: "label_conflict", 4: "bad_label", 5: "label_conflict"}  # 1-based line numbers
    source = tmp_path / "hub" / "askcooking" / "train.json"
    source.parent.mkdir(parents=True)
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    manifest = download_shp(tmp_path / "out", from_path=tmp_path / "hub", quiet=True)

    lines = quarantine_lines(tmp_path / "out")
    assert {entry["line"]: entry["reason"] for entry in lines} == expected_reasons
    for entry in lines:
        assert entry["record"] == records[entry["line"] - 1]
        assert entry["file"].endswith("askcooking/train.json")
    assert manifest["counts"]["quarantined"] == len(expected_reasons) == len(lines)
