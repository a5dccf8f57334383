"""The `trl` export, proven by TRL's own trainers (issue #11 item 1): DPOTrainer, RewardTrainer and SFTTrainer each read
the export of the bundled sample's split with prefdata's own tokenizer (`prefdata train tokenizer`, whose chat template
renders as prefdata does) and train two steps, on CPU, offline.

Followed: TRL's dataset formats guide (https://huggingface.co/docs/trl/dataset_formats, conversational "preference"
and "prompt-completion" with an explicit prompt), loaded as one config per phase (``load_dataset(EXPORT, "rm")``, the
export's README header). Each test checks the count of rows TRL kept against the split's own rows, and that the text TRL
tokenised is prefdata's rendering of the row.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="TRL is a dev dependency")
sys.path.insert(0, str(Path(__file__).parent))
import consumer_support as support  # noqa: E402

from prefdata.contract.phases import serves  # noqa: E402
from prefdata.contract.render import render  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The split, its `trl` export, prefdata's tokenizer and a tiny model saved beside it (what a user points TRL at)."""
    from trainers.components.models import load_causal_lm

    root = tmp_path_factory.mktemp("trl")
    split, export = support.sample_export(root, "trl")
    tokenizer = support.prefdata_tokenizer(split, root / "tok", template="dschat")
    load_causal_lm("tiny-gpt2", tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return {"root": root, "split": split, "export": export, "tokenizer": tokenizer, "model": str(root / "model")}


def _dataset(setup, name: str):
    """One split of the export's config for its phase, as README's "Use with…" loads it: ``load_dataset(EXPORT, "rm")``
    (a cache of the test's own: `datasets` keys a local folder's cache by its name)."""
    from datasets import load_dataset

    return load_dataset(str(setup["export"]), name.split("_")[0], cache_dir=str(setup["root"] / "cache"))[name]


def _args(config_class, setup, **extra):
    return config_class(output_dir=str(setup["root"] / "out"), max_steps=2, per_device_train_batch_size=4,
                        report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True, **extra)


def _expected_rows(setup, split: str, phase: str) -> list[dict]:
    return [row for row in support.split_rows(setup["split"], split) if serves(row, phase)]


def test_dpo_trainer_trains_on_the_rm_export(setup):
    from trl import DPOConfig, DPOTrainer

    rows = _expected_rows(setup, "rm_train", "rm")
    trainer = DPOTrainer(model=setup["model"], args=_args(DPOConfig, setup), train_dataset=_dataset(setup, "rm_train"),
                         processing_class=setup["tokenizer"])
    assert len(trainer.train_dataset) == len(rows) > 0
    tokenizer, first = setup["tokenizer"], trainer.train_dataset[0]
    assert tokenizer.decode(first["prompt_ids"]) == render(rows[0]["prompt"], None, "dschat")
    assert tokenizer.decode(first["chosen_ids"]) == " " + rows[0]["chosen"]
    assert tokenizer.decode(first["rejected_ids"]) == " " + rows[0]["rejected"]
    assert trainer.train().global_step == 2


def test_reward_trainer_trains_on_the_rm_export(setup):
    from trl import RewardConfig, RewardTrainer

    rows = _expected_rows(setup, "rm_train", "rm")
    trainer = RewardTrainer(model=setup["model"], args=_args(RewardConfig, setup),
                            train_dataset=_dataset(setup, "rm_train"), processing_class=setup["tokenizer"])
    assert len(trainer.train_dataset) == len(rows) > 0
    first = trainer.train_dataset[0]
    decode = setup["tokenizer"].decode
    assert decode(first["chosen_ids"]) == render(rows[0]["prompt"], rows[0]["chosen"], "dschat")
    assert decode(first["rejected_ids"]) == render(rows[0]["prompt"], rows[0]["rejected"], "dschat")
    assert trainer.train().global_step == 2


def test_sft_trainer_trains_on_the_sft_export(setup):
    from trl import SFTConfig, SFTTrainer

    rows = _expected_rows(setup, "sft_train", "sft")
    trainer = SFTTrainer(model=setup["model"], args=_args(SFTConfig, setup), train_dataset=_dataset(setup, "sft_train"),
                         processing_class=setup["tokenizer"])
    assert len(trainer.train_dataset) == len(rows) > 0
    first = trainer.train_dataset[0]
    assert setup["tokenizer"].decode(first["input_ids"]) == render(rows[0]["prompt"], rows[0]["chosen"], "dschat")
    assert trainer.train().global_step == 2
