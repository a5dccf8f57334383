"""The `trl` export, read as OpenRLHF reads it with ``--data.apply_chat_template`` and a model whose tokenizer came from
`prefdata train tokenizer` (or a prefdata checkpoint): issue #11 item 1.

OpenRLHF does not install without GPU packages (flash-attn, a pinned DeepSpeed and transformers), so its readers are
re-implemented in `consumer_support` from OpenRLHF 0.11.2's openrlhf/datasets/reward_dataset.py (`preprocess_data`,
`RewardDataset.__getitem__`), sft_dataset.py and prompts_dataset.py. OpenRLHF cuts each reply out of the full chat's
rendering by the length of the prompt's rendering, so this holds only because the chat template renders the prompt as
a prefix of the whole chat: the sequences it trains on must be prefdata's own rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the chat template needs transformers")
sys.path.insert(0, str(Path(__file__).parent))
import consumer_support as support  # noqa: E402

from prefdata.contract.phases import serves  # noqa: E402
from prefdata.contract.render import render  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("openrlhf")
    split = support.sample_split(root)
    return split, support.export(split, root / "export", "trl"), root


def _load(path: Path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path))["train"]  # what --data.dataset PATH.jsonl does


def _rows(split_dir: Path, split: str, phase: str) -> list[dict]:
    return [row for row in support.split_rows(split_dir, split) if serves(row, phase)]


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_reward_and_dpo_read_prefdatas_rendering(exported, template):
    split_dir, export_dir, root = exported
    tokenizer = support.prefdata_tokenizer(split_dir, root / f"tok-{template}", template)
    eos = tokenizer.eos_token
    records, rows = _load(export_dir / "rm_train.jsonl"), _rows(split_dir, "rm_train", "rm")
    assert len(records) == len(rows) > 0
    for record, row in zip(records, rows):
        chosen, rejected = support.openrlhf_reward_texts(record, tokenizer.apply_chat_template, eos)
        assert chosen == render(row["prompt"], row["chosen"], template).rstrip("\n") + " " + eos
        assert rejected == render(row["prompt"], row["rejected"], template).rstrip("\n") + " " + eos


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_sft_and_ppo_read_prefdatas_rendering(exported, template):
    split_dir, export_dir, root = exported
    tokenizer = support.prefdata_tokenizer(split_dir, root / f"tok-{template}-sft", template)
    eos = tokenizer.eos_token
    records, rows = _load(export_dir / "sft_train.jsonl"), _rows(split_dir, "sft_train", "sft")
    assert len(records) == len(rows) > 0
    for record, row in zip(records, rows):
        prompt, sequence = support.openrlhf_sft_texts(record, tokenizer.apply_chat_template, eos)
        assert prompt == render(row["prompt"], None, template)  # the loss starts where the reply starts
        assert sequence == render(row["prompt"], row["chosen"], template).rstrip("\n") + " " + eos
    records, rows = _load(export_dir / "ppo_train.jsonl"), _rows(split_dir, "ppo_train", "ppo")
    assert len(records) == len(rows) > 0
    for record, row in zip(records, rows):
        assert support.openrlhf_prompt_text(record, tokenizer.apply_chat_template) == render(row["prompt"], None,
                                                                                               template)
