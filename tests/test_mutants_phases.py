"""Tests that kill mutants of `prefdata/contract/phases.py` the suite let survive (issue #15): the unpaired (KTO) row
in `serves` and `phase_of_rows`, and the messages of the two refusals."""

from __future__ import annotations

import pytest
from split_helpers import demo, pair, unpaired

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import phase_of_rows, phase_splits, require_preference_rows, serves


@pytest.mark.parametrize("desirable", [True, False])
def test_an_unpaired_reply_serves_only_ppo(desirable):
    """A labelled reply is neither a demonstration nor a pair, whichever side holds it: the label decides."""
    row = unpaired(3, desirable)
    assert [phase for phase in ("sft", "rm", "ppo") if serves(row, phase)] == ["ppo"]


def test_a_split_of_unpaired_rows_feeds_rm():
    """Written out by hand from the /2 spec: unpaired rows alone, or with pairs, make an rm split; with a
    demonstration (sft only) the split is read as ppo, the one phase every row feeds."""
    labelled = [unpaired(1, True), unpaired(2, False)]
    assert phase_of_rows(labelled) == "rm"
    assert phase_of_rows(labelled + [pair(3)]) == "rm"
    assert phase_of_rows(labelled + [demo(4)]) == "ppo"
    assert phase_of_rows([unpaired(5, True)]) == "rm"


def test_unknown_phase_names_the_phases():
    with pytest.raises(ValueError, match=r"unknown phase 'kto'; choose one of sft, rm, ppo"):
        phase_splits("kto")


def test_plain_text_rows_are_refused_naming_the_directory_and_the_schemas(tmp_path):
    with pytest.raises(PrefdataError) as error:
        require_preference_rows("prefdata.unsup/1", "export", str(tmp_path / "corpus"))
    message = str(error.value)
    assert message.startswith(str(tmp_path / "corpus"))
    assert "holds prefdata.unsup/1 rows" in message and "export needs prefdata.preference/2 rows" in message
