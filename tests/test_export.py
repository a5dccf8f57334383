"""Exports: TRL conversational, DeepSpeed-Chat local/jsonfile, ChatLLaMA, JSONL, Parquet; Hub push boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from split_helpers import demo, hh_rows, pair, prompt_only, write_dataset

from prefdata.cli import main
from prefdata.contract.render import render
from prefdata.contract.row import PREFERENCE_SCHEMA
from prefdata.jobs.export import export_dataset
from prefdata.jobs.split import split_datasets
from prefdata.storage.dataset import iter_rows
from prefdata.storage.rows import python_rows


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, hh_harmless_test) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    rows = hh_rows(hh_harmless_test)[:600] + [demo(i) for i in range(20)] + [prompt_only(i) for i in range(20)]
    source = write_dataset(tmp / "in", {"train": rows})
    split_datasets([source], tmp / "split", ratio=(1, 1, 1), eval_fraction=0.1, seed=3, quiet=True)
    return tmp / "split"


def rows_of(directory: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for split, row in iter_rows(directory):
        out.setdefault(split, []).append(row)
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def test_trl_jsonl_has_the_conversational_shape_per_phase(split_dir, tmp_path):
    export_dataset(split_dir, tmp_path / "trl", format="trl", quiet=True)
    source = rows_of(split_dir)
    rm = read_jsonl(tmp_path / "trl" / "rm_train.jsonl")
    assert len(rm) == len(source["rm_train"]) and rm
    for item, row in zip(rm, source["rm_train"]):
        assert set(item) == {"prompt", "chosen", "rejected"}
        assert item["prompt"] == row["prompt"]
        assert item["chosen"] == [{"role": "assistant", "content": row["chosen"]}]
        assert item["rejected"] == [{"role": "assistant", "content": row["rejected"]}]
    sft = read_jsonl(tmp_path / "trl" / "sft_train.jsonl")
    assert [s["completion"][0]["content"] for s in sft] == [r["chosen"] for r in source["sft_train"]]
    ppo = read_jsonl(tmp_path / "trl" / "ppo_train.jsonl")
    assert all(set(p) == {"prompt"} and p["prompt"][-1]["role"] == "user" for p in ppo)


def test_trl_export_passes_trls_own_format_helpers(split_dir, tmp_path):
    data_utils = pytest.importorskip("trl.data_utils", reason="trl is not installed in this environment")
    from datasets import load_dataset

    export_dataset(split_dir, tmp_path / "trl", format="trl", container="parquet", quiet=True)
    for name in ("rm_train", "sft_train", "ppo_train"):
        dataset = load_dataset("parquet", data_files=str(tmp_path / "trl" / f"{name}.parquet"), split="train")
        for example in dataset.select(range(min(20, len(dataset)))):
            assert data_utils.is_conversational(example)
            assert data_utils.maybe_extract_prompt(example) == example


def test_trl_arrow_container_loads_with_datasets(split_dir, tmp_path):
    from datasets import load_from_disk

    export_dataset(split_dir, tmp_path / "trl", format="trl", container="arrow", quiet=True)
    loaded = load_from_disk(str(tmp_path / "trl"))
    assert loaded["rm_eval"].column_names == ["prompt", "chosen", "rejected"]
    assert len(loaded["sft_train"]) == len(rows_of(split_dir)["sft_train"])


def test_dschat_files_have_exactly_the_columns_its_loader_reads(split_dir, tmp_path):
    from datasets import load_dataset

    export_dataset(split_dir, tmp_path / "ds", format="dschat", quiet=True)
    source = rows_of(split_dir)
    for phase in ("sft", "rm", "ppo"):
        folder = tmp_path / "ds" / phase
        # what DeepSpeed-Chat's LocalJsonFileDataset does with <data dir>/train.json and eval.json
        raw = load_dataset("json", data_files={"train": str(folder / "train.json"), "eval": str(folder / "eval.json")})
        for part in ("train", "eval"):
            assert sorted(raw[part].column_names) == ["chosen", "prompt", "rejected"]
            assert len(raw[part]) == len(source[f"{phase}_{part}"])
    rm = json.loads((tmp_path / "ds" / "rm" / "train.json").read_text(encoding="utf-8"))
    for item, row in zip(rm, source["rm_train"]):
        assert item["prompt"].endswith("Assistant:")
        assert f"{item['prompt']} {item['chosen']}" == render(row["prompt"], row["chosen"], template="dschat")
        assert f"{item['prompt']} {item['rejected']}" == render(row["prompt"], row["rejected"], template="dschat")


def test_chatllama_three_files(split_dir, tmp_path):
    export_dataset(split_dir, tmp_path / "cl", format="chatllama", quiet=True)
    source = rows_of(split_dir)
    actor = json.loads((tmp_path / "cl" / "actor_training_data.json").read_text(encoding="utf-8"))
    reward = json.loads((tmp_path / "cl" / "reward_training_data.json").read_text(encoding="utf-8"))
    rlhf = json.loads((tmp_path / "cl" / "rlhf_training_data.json").read_text(encoding="utf-8"))
    assert all(set(a) == {"user_input", "completion"} for a in actor) and len(actor) == len(source["sft_train"])
    assert all(set(r) == {"user_input", "completion", "score"} for r in reward)
    assert len(reward) == 2 * len(source["rm_train"])
    assert all(set(r) == {"user_input"} for r in rlhf) and len(rlhf) == len(source["ppo_train"])


def test_jsonl_and_parquet_round_trip_canonical_rows(split_dir, tmp_path):
    export_dataset(split_dir, tmp_path / "j", format="jsonl", quiet=True)
    export_dataset(split_dir, tmp_path / "p", format="parquet", quiet=True)
    source = rows_of(split_dir)
    for name, rows in source.items():
        assert read_jsonl(tmp_path / "j" / f"{name}.jsonl") == rows
        table = pq.read_table(tmp_path / "p" / f"{name}.parquet")
        assert table.schema.remove_metadata() == PREFERENCE_SCHEMA
        assert python_rows(table) == rows  # parquet keeps null tool fields; read back as written


def test_plain_import_output_is_exported_by_what_its_rows_allow(tmp_path):
    source = write_dataset(tmp_path / "in", {"train": [pair(i) for i in range(5)], "test": [demo(1)]})
    report = export_dataset(source, tmp_path / "trl", format="trl", quiet=True)
    assert report["splits"]["train"]["phase"] == "rm" and report["splits"]["test"]["phase"] == "sft"


def test_export_refuses_to_clobber_and_overwrites_atomically(split_dir, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(split_dir), "-f", "jsonl", "-o", str(other), "--overwrite"])
    assert exit_info.value.code == 2 and (other / "notes.txt").exists()
    main(["export", str(split_dir), "-f", "jsonl", "-o", str(tmp_path / "x"), "-q"])
    main(["export", str(split_dir), "-f", "jsonl", "-o", str(tmp_path / "x"), "-q", "--overwrite"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.")]


def test_push_to_hub_stops_at_the_network_boundary(split_dir, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(split_dir), "-f", "trl", "-o", str(tmp_path / "t"), "--push-to-hub", "someone/data", "-q"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prefdata: error:") and "HF_HUB_OFFLINE" in err and "\n" not in err
