"""One definition of phases and of what each row kind serves, used by split, export and stats."""

from __future__ import annotations

import numpy as np
import pytest
from split_helpers import demo, pair, prompt_only, scored, unpaired, write_dataset

from prefdata.contract.phases import (
    BY_NEED,
    NEEDS,
    PHASES,
    SERVES,
    SPLITS,
    phase_of_rows,
    phase_of_split,
    phase_splits,
    serves,
)
from prefdata.contract.row import row_kind
from prefdata.jobs import export, split
from prefdata.jobs.stats import dataset_stats

ROWS = {"pair": pair(1), "demonstration": demo(1), "scored": scored("Rate me", "Fine.", 3.0), "prompt_only": prompt_only(1),
        "unpaired": unpaired(1, False)}
# What `prefdata split` assigns each kind to, and what each phase can read from it, written out by hand from design §1
# and the /2 spec (an unpaired row goes to rm, where KTO reads it, and never serves sft).
HAND_SERVES = {"pair": {"sft", "rm", "ppo"}, "demonstration": {"sft"}, "scored": {"sft"}, "prompt_only": {"ppo"},
               "unpaired": {"rm"}}
HAND_READS = {"pair": {"sft", "rm", "ppo"}, "demonstration": {"sft", "ppo"}, "scored": {"sft", "ppo"},
              "prompt_only": {"ppo"}, "unpaired": {"ppo"}}


def test_the_phases_and_their_splits():
    assert PHASES == ("sft", "rm", "ppo")
    assert SPLITS == ("sft_train", "sft_eval", "rm_train", "rm_eval", "ppo_train", "ppo_eval")
    assert phase_splits("rm") == ("rm_train", "rm_eval")
    with pytest.raises(ValueError, match="unknown phase 'reward'"):
        phase_splits("reward")
    assert [phase_of_split(n) for n in ("rm_eval", "sft_train", "ppo_eval", "train", "rm_test", "reward_train")] == [
        "rm", "sft", "ppo", None, None, None]


@pytest.mark.parametrize("kind", list(HAND_SERVES))
def test_what_each_row_kind_serves(kind):
    row = ROWS[kind]
    assert row_kind(row) == kind
    assert SERVES[row_kind(row)] == HAND_SERVES[kind]
    assert {phase for phase in PHASES if serves(row, phase)} == HAND_READS[kind]


def test_needs_and_the_phase_a_split_of_other_rows_feeds():
    assert NEEDS == {"sft": ("chosen",), "rm": ("chosen", "rejected"), "ppo": ()}
    assert BY_NEED == ("rm", "sft", "ppo")
    assert phase_of_rows([pair(1), pair(2)]) == "rm"
    assert phase_of_rows([pair(1), demo(2)]) == "sft"
    assert phase_of_rows([pair(1), prompt_only(2)]) == "ppo"
    assert phase_of_rows([]) == "ppo"


def test_split_serves_matrix_is_the_contracts():
    expected = np.array([[phase in HAND_SERVES[kind] for phase in PHASES] for kind in split.KIND_CODES])
    assert (expected == split._SERVES).all()
    assert not hasattr(split, "PHASES") or split.PHASES is PHASES


def test_export_converts_only_what_a_phase_uses_of_a_row():
    for kind, row in ROWS.items():
        for phase in PHASES:
            usable = phase in HAND_READS[kind]
            assert (export.to_trl(row, phase) is not None) == usable
            assert (export.to_dschat(row, phase) is not None) == usable
            assert bool(export.to_chatllama(row, phase)) == usable


def test_stats_counts_rows_serving_each_phase(tmp_path):
    rows = [pair(i) for i in range(3)] + [demo(i) for i in range(2)] + [prompt_only(0)]
    directory = write_dataset(tmp_path / "ds", {"rm_train": rows, "train": rows})
    stats = dataset_stats(directory)
    for name, phase in (("rm_train", "rm"), ("train", None)):
        assert stats["splits"][name]["phase"] == phase
        assert stats["splits"][name]["rows_serving"] == {"sft": 5, "rm": 3, "ppo": 6}
