"""Issue #15: `prefdata split` warns about the empty eval part of a phase, and only when it is empty."""

from __future__ import annotations

from split_helpers import pair, write_dataset

from prefdata.jobs.split import split_datasets
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
