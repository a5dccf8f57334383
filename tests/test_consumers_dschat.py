"""The `dschat` export, read as DeepSpeed-Chat reads `--data_path local/jsonfile` (issue #11 item 1).

DeepSpeed-Chat is not on the package registry, so its reader is re-implemented in `consumer_support` from
microsoft/DeepSpeedExamples applications/DeepSpeed-Chat/dschat/utils/data/raw_datasets.py (LocalJsonFileDataset: the
" " it puts before the prompt and before each reply) and data_utils.py (get_raw_dataset: both data/train.json and
data/eval.json must exist; get_raw_dataset_split_index: `--data_split`; create_dataset_split: what each step tokenises).
The export's folder of a phase is copied into DeepSpeed-Chat's data/ folder, as README's "Use with…" says, and the step
is run with the `--data_split` that gives it every row (10,0,0 / 0,10,0 / 0,0,10).
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import consumer_support as support  # noqa: E402

from prefdata.contract.phases import serves  # noqa: E402
from prefdata.contract.render import render  # noqa: E402

EOT = "<|endoftext|>"  # DS-Chat's default end_of_conversation_token
STEPS = {1: ("sft", "10,0,0"), 2: ("rm", "0,10,0"), 3: ("ppo", "0,0,10")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("dschat")
    return (*support.sample_export(root, "dschat"), root)


def _expected(split_dir: Path, split: str, phase: str) -> Counter:
    """What DS-Chat should tokenise for each row of the split that serves the phase, from the rows themselves."""
    texts = Counter()
    for row in support.split_rows(split_dir, split):
        if not serves(row, phase):
            continue
        if phase == "sft":
            texts[(" " + render(row["prompt"], row["chosen"]) + EOT,)] += 1
        elif phase == "rm":
            texts[(" " + render(row["prompt"], row["chosen"]) + EOT,
                   " " + render(row["prompt"], row["rejected"]) + EOT)] += 1
        else:
            texts[(" " + render(row["prompt"]),)] += 1
    return texts


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_reads_exactly_its_phase(exported, step):
    split_dir, export_dir, root = exported
    phase, data_split = STEPS[step]
    chat_path = root / f"DeepSpeed-Chat-step{step}"
    shutil.copytree(export_dir / phase, chat_path / "data")  # cp EXPORT/<phase>/*.json DeepSpeed-Chat/data/
    raw = support.dschat_local_jsonfile(chat_path)
    for part, split in (("train", f"{phase}_train"), ("eval", f"{phase}_eval")):
        records = raw[part]
        index = support.dschat_split_index(data_split, step, len(records))
        read = Counter(texts for i in index if (texts := support.dschat_texts(records[i], step, EOT)) is not None)
        assert read == _expected(split_dir, split, phase), (step, part)
        assert sum(read.values()) > 0


def test_dschat_refuses_a_data_folder_without_eval_json(exported, tmp_path):
    """The contract the export keeps: both files, always (an export without eval.json is unusable there)."""
    _, export_dir, _ = exported
    (tmp_path / "data").mkdir()
    shutil.copy(export_dir / "sft" / "train.json", tmp_path / "data" / "train.json")
    with pytest.raises(RuntimeError, match="train.json and eval.json"):
        support.dschat_local_jsonfile(tmp_path)
    assert {p.name for p in (export_dir / "sft").iterdir()} == {"train.json", "eval.json"}
