"""KTO on CPU with tiny models: on unpaired labelled rows (contract /2) and on pairs read as KTO reads them, the
reward gap between desirable and undesirable replies of unseen prompts must open up.

Desirable replies open with "gladly", undesirable ones with "whatever" (`trainer_helpers.rows`). The policy starts
equal to its reference, so every reward, and the gap, starts at 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from prefdata.contract.row import make_row, row_kind  # noqa: E402
from prefdata.storage.dataset import DatasetWriter  # noqa: E402


def unpaired_rows(n: int, seed: int) -> list[dict]:
    """One labelled reply per prompt, alternately the polite one (label True) and the dismissive one (label False)."""
    out = []
    for k, pair in enumerate(helpers.rows(n, seed)):
        if k % 2 == 0:
            out.append(make_row(pair["prompt"], pair["chosen"], source="test/kto", label=True))
        else:
            out.append(make_row(pair["prompt"], rejected=pair["rejected"], source="test/kto", label=False))
    return out


def write_unpaired_split(path: Path, sizes: dict[str, int]) -> Path:
    with DatasetWriter(path, command="test-split") as writer:
        for i, (split, n) in enumerate(sizes.items()):
            for row in unpaired_rows(n, 50 + i):
                writer.count_in()
                writer.write(row, split)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kto")
    helpers.write_split_dir(root / "pairs", {"rm_train": 96, "rm_eval": 24})
    write_unpaired_split(root / "unpaired", {"rm_train": 192, "rm_eval": 48})
    helpers.train_tokenizer(root / "tok")
    return root


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


def _train(workdir: Path, data: str, **overrides):
    from trainers.recipes.kto import KTOConfig, train_kto

    settings = {"data": str(workdir / data), "model": "tiny-gpt2", "tokenizer": str(workdir / "tok"),
                "out": str(workdir / f"out-{data}"), "cache_dir": str(workdir / "cache"), "dtype": "fp32",
                "zero_stage": 0, "micro_batch_size": 16, "lr": 2e-3, "epochs": 1, "beta": 0.5, "quiet": True,
                **overrides}
    return train_kto(KTOConfig(**settings))


def test_labelled_replies_read_unpaired_rows_and_both_sides_of_pairs():
    from trainers.components.tokens import labelled_replies

    good, bad = unpaired_rows(2, 0)
    assert row_kind(good) == row_kind(bad) == "unpaired"
    assert labelled_replies(good) == [("chosen", True)]
    assert labelled_replies(bad) == [("rejected", False)]
    pair = helpers.rows(1, 0)[0]
    assert labelled_replies(pair) == [("chosen", True), ("rejected", False)]
    demonstration = make_row(pair["prompt"], pair["chosen"], source="t")
    assert labelled_replies(demonstration) == []


def test_kto_gap_grows_on_unpaired_rows(workdir):
    result = _train(workdir, "unpaired", undesirable_weight=1.0)
    before, after = result["eval_before"], result["eval_after"]
    assert before["eval_mean_margin"] == 0.0
    assert after["eval_mean_margin"] > 1.0
    assert after["eval_desirable_reward"] > 0 > after["eval_undesirable_reward"]
    counts = result["cache_train"]["counts"]
    assert counts["rows_in"] == counts["rows_out"] == 192  # one example per unpaired row
    start = json.loads((workdir / "out-unpaired" / "metrics.jsonl").read_text().splitlines()[0])
    assert (start["desirable_train"], start["undesirable_train"]) == (96, 96)


def test_kto_reads_pairs_as_one_desirable_and_one_undesirable_reply(workdir):
    result = _train(workdir, "pairs", desirable_weight=1.0, undesirable_weight=1.5)
    assert result["cache_train"]["counts"]["rows_out"] == 2 * 96
    assert result["eval_after"]["eval_mean_margin"] > result["eval_before"]["eval_mean_margin"] + 1.0
    assert result["last_loss"] < result["first_loss"]
