"""The phase split: no leakage, order independence, stability under appends, ratios, phase rules, blending."""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from split_helpers import demo, groups_by_split, hh_rows, pair, prompt_only, scored, user, write_dataset

from prefdata.cli import main
from prefdata.contract.row import make_row, row_meta
from prefdata.jobs.split import PHASES, SPLITS, assign_phases, split_datasets, unit_floats
from prefdata.storage.dataset import iter_rows, read_manifest

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split_of_ids(directory: Path) -> dict[str, str]:
    return {row["id"]: split for split, row in iter_rows(directory)}


def fingerprints(directory: Path) -> dict[str, str]:
    return {name: info["fingerprint"] for name, info in read_manifest(directory)["splits"].items()}


def check_counts(manifest: dict) -> None:
    counts = manifest["counts"]
    assert counts["records_in"] == counts["records_out"] + counts["quarantined"]


def random_rows(draw_seed: int, n: int, n_groups: int) -> list[dict]:
    rng = random.Random(draw_seed)
    makers = [pair, pair, pair, demo, prompt_only]
    rows = []
    for i in range(n):
        group = f"g{rng.randrange(n_groups)}"
        kind = rng.choice(makers)
        rows.append(kind(draw_seed * 100_000 + i, group=group))
    return rows


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 150), n_groups=st.integers(1, 60), split_seed=st.integers(0, 99))
def test_groups_never_straddle_and_shuffled_input_gives_identical_output(seed, n, n_groups, split_seed):
    rows = random_rows(seed, n, n_groups)
    rows += rows[: n // 5]  # exact duplicates too
    shuffled = rows[:]
    random.Random(seed + 1).shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = write_dataset(tmp / "a", {"train": rows})
        b = write_dataset(tmp / "b", {"part1": shuffled[: n // 2], "part2": shuffled[n // 2 :]})
        ma = split_datasets([a], tmp / "out_a", seed=split_seed, eval_fraction=0.2, quiet=True)
        split_datasets([b], tmp / "out_b", seed=split_seed, eval_fraction=0.2, quiet=True)
        check_counts(ma)
        assert all(len(splits) == 1 for splits in groups_by_split(tmp / "out_a").values())
        assert fingerprints(tmp / "out_a") == fingerprints(tmp / "out_b")
        assert set(ma["splits"]) == set(SPLITS)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(50, 300))
def test_appending_ten_percent_keeps_old_rows_in_place(seed, n):
    rng = random.Random(seed)
    old = [pair(seed * 10_000 + i, group=f"g{rng.randrange(n)}") for i in range(n)]
    new = [pair(seed * 10_000 + n + i, group=f"g{rng.randrange(2 * n)}") for i in range(max(1, n // 10))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split_datasets([write_dataset(tmp / "old", {"train": old})], tmp / "o1", eval_fraction=0.1, quiet=True)
        split_datasets([write_dataset(tmp / "new", {"train": old + new})], tmp / "o2", eval_fraction=0.1, quiet=True)
        before, after = split_of_ids(tmp / "o1"), split_of_ids(tmp / "o2")
        kept = sum(after.get(row_id) == split for row_id, split in before.items())
        assert kept / len(before) >= 0.99


def test_assignment_is_the_same_however_the_groups_are_chunked():
    groups = [f"post-{i}" for i in range(3000)]
    eligible = np.ones((len(groups), 3), dtype=bool)
    whole = assign_phases(unit_floats(groups, 7, "phase"), eligible, (6, 2, 2))
    parts = [assign_phases(unit_floats(groups[i : i + 700], 7, "phase"), eligible[i : i + 700], (6, 2, 2))
             for i in range(0, len(groups), 700)]
    assert np.array_equal(whole, np.concatenate(parts))


@pytest.mark.parametrize("ratio", [(6, 2, 2), (1, 1, 1), (0, 3, 1)])
def test_achieved_ratio_within_binomial_tolerance(ratio):
    n = 40_000
    groups = [f"g{i}" for i in range(n)]
    phase = assign_phases(unit_floats(groups, 1234, "phase"), np.ones((n, 3), dtype=bool), ratio)
    for index, weight in enumerate(ratio):
        p = weight / sum(ratio)
        observed = float((phase == index).mean())
        assert abs(observed - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12
    evals = unit_floats(groups, 1234, "eval") < 0.05
    assert abs(evals.mean() - 0.05) <= 5 * math.sqrt(0.05 * 0.95 / n)


def test_real_hh_split_reconciles_and_reports_achieved_ratio(tmp_path, hh_harmless_test):
    rows = hh_rows(hh_harmless_test)
    source = write_dataset(tmp_path / "hh", {"test": rows})
    requested = {"sft": 6, "rm": 2, "ppo": 2}
    manifest = split_datasets([source], tmp_path / "out", ratio=tuple(requested.values()), eval_fraction=0.05, seed=1,
                              quiet=True)
    check_counts(manifest)
    unique = {r["id"]: r for r in rows}
    placed = split_of_ids(tmp_path / "out")  # read back from the shards, not from the manifest
    assert sorted(placed) == sorted(unique)  # every distinct input row exactly once
    assert manifest["dedup"]["duplicate"] == len(rows) - len(unique)
    assert manifest["counts"]["records_out"] == len(unique)
    # Whole groups are assigned, so the row share of a phase varies like a binomial over groups weighted by size.
    group_sizes = Counter(r["group"] for r in unique.values())
    spread = math.sqrt(sum(size * size for size in group_sizes.values())) / len(unique)
    per_phase = Counter(split.partition("_")[0] for split in placed.values())
    for phase, weight in requested.items():
        share = weight / sum(requested.values())
        assert abs(per_phase[phase] / len(unique) - share) <= 5 * spread * math.sqrt(share * (1 - share))
        assert manifest["split"]["ratio_achieved"][phase] == pytest.approx(per_phase[phase] / len(unique), abs=1e-6)
    evals = sum(split.endswith("_eval") for split in placed.values())
    assert abs(evals / len(unique) - 0.05) <= 5 * spread * math.sqrt(0.05 * 0.95)
    assert all(len(s) == 1 for s in groups_by_split(tmp_path / "out").values())


@pytest.mark.parametrize("ratio", [(10, 0, 0), (0, 1, 0), (0, 0, 1)])
def test_single_phase_ratios_do_not_crash(tmp_path, ratio):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(40)] + [prompt_only(i) for i in range(5)]})
    manifest = split_datasets([source], tmp_path / "out", ratio=ratio, eval_fraction=0.0, quiet=True)
    check_counts(manifest)
    wanted = PHASES[ratio.index(max(ratio))]
    assert manifest["splits"][f"{wanted}_train"]["rows"] > 0
    for phase in PHASES:
        if phase != wanted:
            assert manifest["splits"][f"{phase}_train"]["rows"] == 0
    if wanted != "ppo":  # prompt-only rows have nowhere to go
        assert manifest["counts"]["quarantined_by_reason"]["phase_disabled"] == 5
        assert any("ratio 0" in w for w in manifest["warnings"])


def test_empty_eval_part_is_a_warning(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(1)]})
    manifest = split_datasets([source], tmp_path / "out", ratio=(1, 1, 1), eval_fraction=0.01, quiet=True)
    assert manifest["warnings"]
    assert sum(info["rows"] for info in manifest["splits"].values()) == 1


def test_each_kind_goes_only_where_it_can_be_used(tmp_path):
    rows = [demo(i) for i in range(30)] + [prompt_only(i) for i in range(30)]
    rows += [pair(100, group="mixed"), prompt_only(100, group="mixed")]  # common phase: ppo
    rows += [demo(200, group="clash"), prompt_only(200, group="clash")]  # no common phase
    source = write_dataset(tmp_path / "in", {"train": rows})
    manifest = split_datasets([source], tmp_path / "out", eval_fraction=0.0, quiet=True)
    check_counts(manifest)
    placed = {row["id"]: split for split, row in iter_rows(tmp_path / "out")}
    for row in rows[:60]:
        assert placed[row["id"]] == ("sft_train" if row["rejected"] is None and row["chosen"] else "ppo_train")
    assert placed[rows[60]["id"]] == placed[rows[61]["id"]] == "ppo_train"
    assert manifest["counts"]["quarantined_by_reason"].get("unusable_in_phase") == 1
    assert (rows[62]["id"] in placed) != (rows[63]["id"] in placed)


def test_scored_rows_are_paired_with_margin_and_lone_ones_become_demonstrations(tmp_path):
    rows = [scored("Best soup?", "Tomato soup.", 5.0), scored("Best soup?", "Leek soup.", 3.0),
            scored("Best soup?", "Pea soup.", 3.0), scored("Lonely question?", "Lonely answer.", 4.0)]
    source = write_dataset(tmp_path / "in", {"train": rows})
    manifest = split_datasets([source], tmp_path / "out", ratio=(1, 1, 1), eval_fraction=0.0, quiet=True)
    check_counts(manifest)
    assert manifest["pairing"]["pairs_made"] == 2 and manifest["pairing"]["tied_comparisons"] == 1
    out = [row for _, row in iter_rows(tmp_path / "out")]
    made = [r for r in out if r["rejected"] is not None]
    assert {(r["chosen"], r["rejected"]) for r in made} == {("Tomato soup.", "Leek soup."), ("Tomato soup.", "Pea soup.")}
    assert all(row_meta(r)["margin"] == 2.0 for r in made)
    lone = [(split, r) for split, r in iter_rows(tmp_path / "out") if r["chosen"] == "Lonely answer."]
    assert lone and lone[0][0] == "sft_train"
    assert manifest["counts"]["records_in"] == 4 and manifest["counts"]["records_out"] == 4


def test_exact_duplicates_across_inputs_are_dropped_once(tmp_path):
    a = write_dataset(tmp_path / "a", {"train": [pair(i) for i in range(20)]})
    b = write_dataset(tmp_path / "b", {"train": [pair(i) for i in range(10, 30)]})
    manifest = split_datasets([a, b], tmp_path / "out", quiet=True)
    assert manifest["dedup"]["duplicate"] == 10
    assert manifest["counts"]["records_out"] == 30
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "out" / "quarantine.jsonl").open()]
    assert reasons == ["duplicate"] * 10


def test_exclude_drops_prompts_of_an_eval_set(tmp_path):
    train = [pair(i) for i in range(20)]
    eval_rows = [make_row(user("  QUESTION 3: how do I water a fern in WINTER?"), "x", source="eval")]
    source = write_dataset(tmp_path / "in", {"train": train})
    held_out = write_dataset(tmp_path / "eval", {"test": eval_rows})
    manifest = split_datasets([source], tmp_path / "out", exclude=[held_out], quiet=True)
    assert manifest["dedup"]["contaminated"] == 1
    assert train[3]["id"] not in split_of_ids(tmp_path / "out")


def test_blend_weights_and_max_rows(tmp_path):
    a = write_dataset(tmp_path / "a", {"train": [pair(i, source="a") for i in range(400)]})
    b = write_dataset(tmp_path / "b", {"train": [pair(1000 + i, source="b") for i in range(100)]})
    manifest = split_datasets([a, b], tmp_path / "out", weights=(0.7, 0.3), quiet=True)
    check_counts(manifest)
    rows = manifest["blend"]["rows"]
    assert rows[str(b)] == 100 and rows[str(a)] == round(100 / 0.3 * 0.7)
    assert manifest["blend"]["achieved_mix"][str(a)] == pytest.approx(0.7, abs=0.01)
    capped = split_datasets([a, b], tmp_path / "capped", max_rows=50, quiet=True)
    assert capped["counts"]["records_out"] == 50
    assert capped["counts"]["quarantined_by_reason"]["sampled_out"] == 450


def test_cli_errors_are_one_line(tmp_path, capsys):
    source = write_dataset(tmp_path / "in", {"train": [pair(1)]})
    for args in (["split", str(source), "--ratio", "1,2", "--out", str(tmp_path / "o")],
                 ["split", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                 ["split", str(source), "--weights", "1,1", "--out", str(tmp_path / "o")]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("prefdata: error:") and "\n" not in err and "Traceback" not in err


def test_cli_rerun_is_idempotent(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(50)]})
    args = ["split", str(source), "--out", str(tmp_path / "o"), "--ratio", "6,2,2", "--seed", "9", "-q"]
    main(args)
    before = fingerprints(tmp_path / "o")
    main([*args, "--overwrite"])
    assert fingerprints(tmp_path / "o") == before


def test_named_splits_only_and_unknown_split_is_an_error(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(10)], "test": [pair(100 + i) for i in range(4)]})
    manifest = split_datasets([source], tmp_path / "out", splits=["test"], quiet=True)
    assert manifest["counts"]["records_in"] == 4
    from prefdata.contract.errors import PrefdataError

    with pytest.raises(PrefdataError, match="no split 'dev'"):
        split_datasets([source], tmp_path / "out2", splits=["dev"], quiet=True)
    assert not (tmp_path / "out2").exists()
