"""The `sharegpt` export with its dataset_info.json, read as LLaMA-Factory reads it (issue #11 items 1 and 5).

LLaMA-Factory's wheel cannot be installed beside prefdata's dev dependencies (it pins datasets<=4.0, trl<=0.24,
transformers<=5.6), so `consumer_support` re-implements from LLaMA-Factory 0.9.5 src/llamafactory/data/parser.py
(DatasetAttr and `join`), converter.py (SharegptDatasetConverter) and processor/*.py (which examples each stage drops).
The re-implementation gave the same `_prompt`/`_response`/`_system` as the 0.9.5 wheel's own converter on all 196
records of this export (checked once by loading converter.py from the wheel; see the consumers branch report).
`llamafactory-cli train --dataset_dir EXPORT --dataset rm_train --stage dpo` reads the folder exactly so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import consumer_support as support  # noqa: E402

from prefdata.contract.phases import serves  # noqa: E402

STAGES = {"sft": "sft", "rm": "dpo", "ppo": "ppo"}  # the LLaMA-Factory --stage that trains on each phase


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("llamafactory")
    return support.sample_export(root, "sharegpt")


def _messages(prompt: list[dict]) -> tuple[str, list[dict]]:
    """(system, turns) of a stored prompt, in LLaMA-Factory's roles."""
    system = prompt[0]["content"] if prompt and prompt[0]["role"] == "system" else ""
    return system, [{"role": m["role"], "content": m["content"]} for m in prompt if m["role"] != "system"]


def _read(export_dir: Path, name: str) -> list[dict]:
    """The dataset named in dataset_info.json, its records converted as LLaMA-Factory converts them."""
    from datasets import load_dataset

    info = json.loads((export_dir / "dataset_info.json").read_text(encoding="utf-8"))
    attr = support.llamafactory_attr(info[name])
    assert attr["formatting"] == "sharegpt"
    records = load_dataset("json", data_files=str(export_dir / info[name]["file_name"]), split="train")
    return [support.llamafactory_sharegpt(record, attr) for record in records]


@pytest.mark.parametrize("split", ["rm_train", "rm_eval", "sft_train", "sft_eval"])
def test_each_stage_keeps_every_row_of_its_phase_with_its_text(exported, split):
    split_dir, export_dir = exported
    phase = split.split("_")[0]
    rows = [row for row in support.split_rows(split_dir, split) if serves(row, phase)]
    converted = _read(export_dir, split)
    assert len(converted) == len(rows) > 0
    assert all(support.llamafactory_keeps(item, STAGES[phase]) for item in converted)
    for item, row in zip(converted, rows):
        system, turns = _messages(row["prompt"])
        replies = [row["chosen"], row["rejected"]] if phase == "rm" else [row["chosen"]]
        assert item == {"_prompt": turns, "_system": system,
                        "_response": [{"role": "assistant", "content": reply} for reply in replies]}


def test_ppo_keeps_every_prompt(exported):
    split_dir, export_dir = exported
    rows = [row for row in support.split_rows(split_dir, "ppo_train") if serves(row, "ppo")]
    converted = _read(export_dir, "ppo_train")
    assert sum(support.llamafactory_keeps(item, "ppo") for item in converted) == len(rows)


def test_kto_labels_and_tool_calls_read_as_llamafactory_reads_them(tmp_path):
    """/2 rows: unpaired labels go to the `kto_tag` dataset (LLaMA-Factory puts the empty answer on the other side of
    the label), a tool call and its result become function_call / observation turns. Checked once against the 0.9.5
    wheel's own converter too (same output)."""
    from prefdata.contract.row import make_row
    from prefdata.jobs.export import export_dataset
    from prefdata.storage.dataset import DatasetWriter

    call = '[{"function":{"arguments":"{\\"city\\":\\"Oslo\\"}","name":"weather"},"id":"c1","type":"function"}]'
    turns = [{"role": "assistant", "content": "", "tool_calls": call},
             {"role": "tool", "content": "rain", "tool_call_id": "c1", "name": "weather"},
             {"role": "assistant", "content": "It rains in Oslo."}]
    rows = {"rm_train": [make_row([{"role": "user", "content": "Good answer?"}], "Yes, here.", source="t", label=True),
                         make_row([{"role": "user", "content": "Bad answer?"}], rejected="Go away.", source="t",
                                  label=False)],
            "sft_train": [make_row([{"role": "user", "content": "Weather in Oslo?"}], turns, source="t")]}
    with DatasetWriter(tmp_path / "in", command="test") as writer:
        for split, split_rows in rows.items():
            for row in split_rows:
                writer.count_in()
                writer.write(row, split)
    export_dataset(tmp_path / "in", tmp_path / "export", format="sharegpt", quiet=True)

    empty = {"role": "assistant", "content": ""}
    kto = _read(tmp_path / "export", "rm_train_unpaired")
    assert kto == [
        {"_prompt": [{"role": "user", "content": "Good answer?"}], "_system": "",
         "_response": [{"role": "assistant", "content": "Yes, here."}, empty]},
        {"_prompt": [{"role": "user", "content": "Bad answer?"}], "_system": "",
         "_response": [empty, {"role": "assistant", "content": "Go away."}]}]
    assert all(support.llamafactory_keeps(item, "kto") for item in kto)
    sft = _read(tmp_path / "export", "sft_train")
    assert sft == [{"_prompt": [{"role": "user", "content": "Weather in Oslo?"},
                                {"role": "function", "content": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
                                {"role": "observation", "content": "rain"}],
                    "_response": [{"role": "assistant", "content": "It rains in Oslo."}], "_system": ""}]
    assert support.llamafactory_keeps(sft[0], "sft")
