"""Issue #15: tests that kill mutants of `prefdata/jobs/split.py`: the empty-eval warning (only when empty), every
option refusal by field and message, the input errors, what a quarantined row carries (where it came from, the id
kept, the benchmark hit), the report's keys, output order for ids that are not hex, and fast fixed cases of
`tests/test_split.py`'s two property tests (shuffled input, appended rows), which the mutation run leaves out.
Rows are built here; expected values follow from them by hand.

Equivalent survivors:
- `unit_floats(group_keys, seed, "blend")` -> `"BLEND"`, and `unit_floats(uniques, seed, "eval")` -> `None`: another
  constant namespace is an equally valid seeded draw, still independent of the "phase" one; only byte pins would see
  it (`tests/test_pinned_outputs.py`, not mapped: one HH-sized test of all verbs, far too slow per mutant).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from split_helpers import demo, pair, user, write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.jobs import split as split_module
from prefdata.jobs.split import assign_phases, parse_numbers, split_datasets
from prefdata.storage.dataset import iter_rows


def eval_warnings(manifest: dict) -> list[str]:
    return [w for w in manifest["warnings"] if "_eval is empty" in w]


def test_a_phase_with_rows_but_no_eval_rows_is_warned_about_by_name(tmp_path):
    # One group, every row in sft: with --eval-fraction 0.01 the one group lands in sft_train, so sft_eval is empty.
    source = write_dataset(tmp_path / "in", {"train": [pair(1)]})
    manifest = split_datasets([source], tmp_path / "out", ratio=(1, 0, 0), eval_fraction=0.01, quiet=True)
    assert [split for split, _ in iter_rows(tmp_path / "out")] == ["sft_train"]
    [warning] = eval_warnings(manifest)
    assert warning.startswith("sft_eval is empty") and "--eval-fraction 0.01" in warning
    assert manifest["warnings"] == [warning]  # rm and ppo have ratio 0: nothing else to say


def test_no_eval_warning_when_eval_is_not_wanted_or_not_empty(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(200)]})
    none_wanted = split_datasets([source], tmp_path / "a", ratio=(1, 0, 0), eval_fraction=0.0, quiet=True)
    assert eval_warnings(none_wanted) == []
    some_wanted = split_datasets([source], tmp_path / "b", ratio=(1, 0, 0), eval_fraction=0.5, quiet=True)
    assert {split for split, _ in iter_rows(tmp_path / "b")} == {"sft_train", "sft_eval"}
    assert eval_warnings(some_wanted) == []


# --- survivors of `scripts/mutation.sh prefdata/jobs/split.py` (issue #15) ---


def quarantine(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / "quarantine.jsonl").open()]


@pytest.mark.parametrize("text, count, message", [
    ("6,x,2", 3, "'6,x,2' is not a comma-separated list of numbers"),
    ("6,2", 3, "needs 3 numbers, got 2 in '6,2'"),
    ("6,-1,2", None, "numbers must be finite, non-negative and not all zero: '6,-1,2'"),
    ("0,0", None, "numbers must be finite, non-negative and not all zero: '0,0'"),
    ("1,nan", None, "numbers must be finite, non-negative and not all zero: '1,nan'"),
    ("1,inf", None, "numbers must be finite, non-negative and not all zero: '1,inf'"),
])
def test_parse_numbers_refusals_name_the_option(text, count, message):
    with pytest.raises(PrefdataError) as error:
        parse_numbers(text, "ratio", count)
    assert (error.value.field, error.value.message) == ("ratio", message)


def test_parse_numbers_reads_a_list():
    assert parse_numbers("6,2,2", "ratio", 3) == (6.0, 2.0, 2.0)
    assert parse_numbers("0,0.5", "weights") == (0.0, 0.5)


@pytest.mark.parametrize("options, field, message", [
    ({"ratio": (1, 2)}, "ratio", "needs three non-negative numbers (sft, rm, ppo), not all zero"),
    ({"ratio": (1, -1, 1)}, "ratio", "needs three non-negative numbers (sft, rm, ppo), not all zero"),
    ({"ratio": (0, 0, 0)}, "ratio", "needs three non-negative numbers (sft, rm, ppo), not all zero"),
    ({"eval_fraction": -0.1}, "eval_fraction", "must be in [0, 1)"),
    ({"eval_fraction": 1.0}, "eval_fraction", "must be in [0, 1)"),
    ({"weights": (1, 1)}, "weights", "needs one non-negative weight per input (1)"),
    ({"weights": (-1,)}, "weights", "needs one non-negative weight per input (1)"),
    ({"weights": (0,)}, "weights", "needs one non-negative weight per input (1)"),
    ({"max_rows": -1}, "max_rows", "must be >= 0"),
    ({"near_dup": 0.0}, "near_dup", "the near-duplicate threshold must be in (0, 1]"),
    ({"near_dup": 1.5}, "near_dup", "the near-duplicate threshold must be in (0, 1]"),
    ({"exclude_ngram": -1}, "exclude_ngram", "must be >= 0 (0: exact prompt match only)"),
])
def test_bad_options_are_refused_by_name_before_reading(tmp_path, options, field, message):
    with pytest.raises(PrefdataError) as error:
        split_datasets([tmp_path / "never-read"], tmp_path / "out", quiet=True, **options)
    assert (error.value.field, error.value.message) == (field, message)


def test_no_input_is_refused():
    with pytest.raises(PrefdataError, match="^give at least one input directory$"):
        split_datasets([], "out", quiet=True)


def test_inputs_of_the_wrong_schema_or_without_the_split_are_named(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(1)], "test": [pair(2)]})
    with pytest.raises(PrefdataError) as error:
        split_datasets([source], tmp_path / "out", splits=["dev"], quiet=True)
    assert (error.value.file, error.value.message) == (str(source), "has no split 'dev' (it has test, train)")
    manifest = json.loads((source / "prefdata.json").read_text())
    manifest["schema"] = "prefdata.unsup/1"
    (source / "prefdata.json").write_text(json.dumps(manifest))
    with pytest.raises(PrefdataError) as error:
        split_datasets([source], tmp_path / "out", quiet=True)
    assert (error.value.file, error.value.message) == (str(source), "holds prefdata.unsup/1 rows; split needs prefdata.preference/2")


def test_a_duplicate_is_quarantined_with_where_it_came_from_and_the_id_kept(tmp_path):
    rows = [pair(1), pair(2)]
    source = write_dataset(tmp_path / "in", {"train": rows, "test": [pair(3), rows[1]]})
    split_datasets([source], tmp_path / "out", splits=["train", "test"], quiet=True)
    [entry] = quarantine(tmp_path / "out")
    assert (entry["file"], entry["index"], entry["reason"], entry["message"]) == (
        f"{source}/test", 1, "duplicate", "same id as a row that was kept")
    assert entry["record"] == {"id": rows[1]["id"], "source": "custom/test", "group": rows[1]["group"],
                               "kept_id": rows[1]["id"]}


def test_contaminated_rows_carry_the_benchmark_and_the_report_counts_them(tmp_path, capsys):
    train = [pair(i) for i in range(6)]
    source = write_dataset(tmp_path / "in", {"train": train})
    held_out = write_dataset(tmp_path / "eval", {"test": [make_row(user("question 3: how do I water a fern in winter?"),
                                                                    "x", source="eval")]})
    manifest = split_datasets([source], tmp_path / "out", exclude=[held_out], exclude_ngram=9)
    assert "decontaminating against 1 prompts from 1 benchmark(s), exact prompts and 9-grams" in capsys.readouterr().err
    # row 3's prompt is the benchmark's (exact); every row shares its 8 words "how do i water a fern in winter"
    entries = {entry["record"]["id"]: entry for entry in quarantine(tmp_path / "out")}
    assert set(entries) == {row["id"] for row in train}
    exact = entries.pop(train[3]["id"])["record"]
    assert (exact["benchmark"], "ngram" in exact) == (str(held_out), False)
    assert {(e["reason"], e["record"]["benchmark"], e["record"]["benchmark_id"], e["record"]["ngram"]) for e in entries.values()} \
        == {("contaminated", str(held_out), exact["benchmark_id"], "how do i water a fern in winter ")}
    report = manifest["decontamination"]
    assert (report["benchmark_prompts"], report["ngram"], report["min_run_words"], report["rows_checked"],
            report["removed_exact"], report["removed_ngram"], report["rows_kept"]) == (1, 9, 8, 6, 1, 5, 0)
    assert manifest["dedup"]["contaminated"] == 6 and manifest["options"]["exclude_ngram"] == 9
    split_datasets([source], tmp_path / "exact", exclude=[held_out], exclude_ngram=0)
    assert "exact prompts only" in capsys.readouterr().err


def test_the_report_without_dedup_or_eval_rows(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(4)]})
    manifest = split_datasets([source], tmp_path / "out", ratio=(1, 0, 0), eval_fraction=0.0, quiet=True)
    assert manifest["split"]["ratio_requested"] == {"sft": 1.0, "rm": 0.0, "ppo": 0.0}
    assert manifest["split"]["ratio_achieved"] == {"sft": 1.0, "rm": 0.0, "ppo": 0.0}
    assert manifest["split"]["eval_fraction_achieved"] == {"sft": 0.0, "rm": 0.0, "ppo": 0.0}
    assert manifest["dedup"] == {"duplicate": 0, "near_duplicate": 0, "contaminated": 0, "near_dup_threshold": None,
                                 "exclude": []}
    assert "decontamination" not in manifest and "blend" not in manifest and "exclude_ngram" not in manifest["options"]


def test_ids_that_are_not_hex_still_order_the_output(tmp_path):
    rows = [{**pair(i), "id": f"custom-{i}"} for i in range(6)]
    source = write_dataset(tmp_path / "in", {"train": rows})
    shuffled = write_dataset(tmp_path / "shuffled", {"train": rows[::-1]})
    split_datasets([source], tmp_path / "a", ratio=(1, 0, 0), eval_fraction=0.0, quiet=True)
    split_datasets([shuffled], tmp_path / "b", ratio=(1, 0, 0), eval_fraction=0.0, quiet=True)
    order = [row["id"] for _, row in iter_rows(tmp_path / "a")]
    assert sorted(order) == sorted(row["id"] for row in rows)
    assert [row["id"] for _, row in iter_rows(tmp_path / "b")] == order


def ids_by_split(directory) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for split, row in iter_rows(directory):
        seen.setdefault(split, []).append(row["id"])
    return seen


def test_shuffled_input_in_other_parts_gives_the_same_splits_in_the_same_order(tmp_path):
    # A fast fixed case of test_split.py's property test (which mutation runs leave out: too slow per mutant).
    rows = [pair(i, group=f"g{i % 50}") for i in range(100)]
    shuffled = rows[::7] + [row for i, row in enumerate(rows) if i % 7] + rows[:5]  # reordered, 5 duplicates
    a = write_dataset(tmp_path / "a", {"train": rows})
    b = write_dataset(tmp_path / "b", {"part1": shuffled[:50], "part2": shuffled[50:]})
    split_datasets([a], tmp_path / "out_a", eval_fraction=0.3, quiet=True)
    split_datasets([b], tmp_path / "out_b", eval_fraction=0.3, quiet=True)
    assert ids_by_split(tmp_path / "out_a") == ids_by_split(tmp_path / "out_b")
    assert len(ids_by_split(tmp_path / "out_a")) == 6  # 50 groups at 6:2:2, 0.3 eval: no split is empty
    phase_of_group = {}
    for split, row in iter_rows(tmp_path / "out_a"):
        assert phase_of_group.setdefault(row["group"], split) == split  # a group never straddles


def test_appended_rows_leave_every_old_row_where_it_was(tmp_path):
    old = [pair(i, group=f"g{i % 40}") for i in range(100)]
    new = [pair(100 + i, group=f"g{30 + i}") for i in range(20)]  # half join old groups, half start new ones
    split_datasets([write_dataset(tmp_path / "old", {"train": old})], tmp_path / "o1", eval_fraction=0.1, quiet=True)
    split_datasets([write_dataset(tmp_path / "new", {"train": old + new})], tmp_path / "o2", eval_fraction=0.1,
                   quiet=True)
    before = {row_id: split for split, ids in ids_by_split(tmp_path / "o1").items() for row_id in ids}
    after = {row_id: split for split, ids in ids_by_split(tmp_path / "o2").items() for row_id in ids}
    assert {row_id: after[row_id] for row_id in before} == before and len(after) == 120


def test_a_near_duplicate_is_quarantined_naming_the_row_kept(tmp_path):
    rows = [pair(1), pair(2), demo(3)]  # the two pairs differ only in their number: similar at 0.3, not at 0.5
    source = write_dataset(tmp_path / "in", {"train": rows})
    manifest = split_datasets([source], tmp_path / "out", near_dup=0.3, quiet=True)
    [entry] = quarantine(tmp_path / "out")
    kept, gone = sorted([rows[0]["id"], rows[1]["id"]])  # the smallest id of a cluster is kept
    assert (entry["reason"], entry["message"], entry["record"]["id"], entry["record"]["kept_id"]) == (
        "near_duplicate", "near-duplicate of a row that was kept", gone, kept)
    assert (manifest["dedup"]["near_duplicate"], manifest["dedup"]["near_dup_threshold"]) == (1, 0.3)
    assert split_datasets([source], tmp_path / "strict", near_dup=0.5, quiet=True)["dedup"]["near_duplicate"] == 0


def test_rows_sampled_out_are_quarantined_and_the_blend_is_reported(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(5)]})
    manifest = split_datasets([source], tmp_path / "out", max_rows=3, quiet=True)
    assert {(e["reason"], e["message"]) for e in quarantine(tmp_path / "out")} == {
        ("sampled_out", "not drawn by --weights/--max-rows")}
    assert manifest["blend"] == {"weights": None, "max_rows": 3, "rows": {str(source): 3},
                                 "achieved_mix": {str(source): 1.0}}


def test_progress_bars_are_named_and_counted_in_rows(tmp_path, monkeypatch):
    bars, real_progress = [], split_module.progress

    def recording(iterable, **options):
        bars.append((options["desc"], options.get("unit"), options.get("quiet")))
        return real_progress(iterable, **options)

    monkeypatch.setattr(split_module, "progress", recording)
    source = write_dataset(tmp_path / "in", {"train": [pair(1), pair(2)]})
    split_datasets([source], tmp_path / "out", near_dup=0.3, quiet=True)
    assert ("split", "row", True) in bars and ("near-dup", "chunk", True) in bars


@pytest.mark.parametrize("u, phase", [(0.0, 0), (0.49, 0), (0.5, 1), (0.74, 1), (0.76, 2), (0.99, 2)])
def test_weights_that_sum_below_one_are_renormalised(u, phase):
    # ratio 0.2 : 0.1 : 0.1 of total 0.4 is 50 % : 25 % : 25 %: sft below 0.5, rm below 0.75, then ppo
    eligible = np.ones((1, 3), dtype=bool)
    assert assign_phases(np.array([u]), eligible, (0.2, 0.1, 0.1)).tolist() == [phase]
