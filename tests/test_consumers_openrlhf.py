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
    return (*support.sample_export(root, "trl"), root)


@pytest.fixture(scope="module")
def tokenizers(exported) -> dict:
    """`prefdata train tokenizer --template T` for each template, as a user's model directory would hold it."""
    split_dir, _, root = exported
    return {t: support.prefdata_tokenizer(split_dir, root / f"tok-{t}", t) for t in ("dschat", "chatml")}


def _read(exported, split: str, phase: str) -> list[tuple[dict, dict]]:
    """(record as OpenRLHF loads it from the export, the split's row it came from), for every row serving the phase:
    ``--data.dataset EXPORT/SPLIT.jsonl`` is ``load_dataset("json", data_files=…)``."""
    from datasets import load_dataset

    split_dir, export_dir, _ = exported
    records = load_dataset("json", data_files=str(export_dir / f"{split}.jsonl"))["train"]
    rows = [row for row in support.split_rows(split_dir, split) if serves(row, phase)]
    assert len(records) == len(rows) > 0
    return list(zip(records, rows))


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_reward_and_dpo_read_prefdatas_rendering(exported, tokenizers, template):
    apply, eos = tokenizers[template].apply_chat_template, tokenizers[template].eos_token
    for record, row in _read(exported, "rm_train", "rm"):
        chosen, rejected = support.openrlhf_reward_texts(record, apply, eos)
        assert chosen == render(row["prompt"], row["chosen"], template).rstrip("\n") + " " + eos
        assert rejected == render(row["prompt"], row["rejected"], template).rstrip("\n") + " " + eos


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_sft_and_ppo_read_prefdatas_rendering(exported, tokenizers, template):
    apply, eos = tokenizers[template].apply_chat_template, tokenizers[template].eos_token
    for record, row in _read(exported, "sft_train", "sft"):
        prompt, sequence = support.openrlhf_sft_texts(record, apply, eos)
        assert prompt == render(row["prompt"], None, template)  # the loss starts where the reply starts
        assert sequence == render(row["prompt"], row["chosen"], template).rstrip("\n") + " " + eos
    for record, row in _read(exported, "ppo_train", "ppo"):
        assert support.openrlhf_prompt_text(record, apply) == render(row["prompt"], None, template)
