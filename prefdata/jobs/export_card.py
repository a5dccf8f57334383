"""What makes an export folder load whole: one config per phase in its README's YAML header (the Hub's dataset card
`configs:` field, which `datasets.load_dataset(FOLDER, "rm")` reads the same way offline), and for ShareGPT exports
LLaMA-Factory's ``dataset_info.json``.

The phases have different columns, so the folder as one dataset cannot load (a CastError); one config per phase can.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from prefdata.contract.version import __version__

README = "README.md"
DATASET_INFO = "dataset_info.json"  # LLaMA-Factory's registry of dataset files (data/README.md)
_EVAL_NAMES = ("eval", "test", "validation")


def split_part(name: str) -> str:
    """``train`` or ``eval``: the file a split goes to in formats with one file per phase (DS-Chat, ChatLLaMA)."""
    return "eval" if name.endswith("_eval") or name in _EVAL_NAMES else "train"


def config_of(format: str, name: str, phase: str, part: str) -> tuple[str, str]:
    """(config, split) of a written file: the config is the phase (``rm_unpaired`` for labelled replies); the split is
    the input split's name, or train/eval where the format merges splits into one file per phase."""
    config = f"{phase}_{part}" if part else phase
    return config, split_part(name) if format in ("dschat", "chatllama") else name


def arrow_files(parquet_file: str) -> str:
    """Where `save_to_disk` puts the rows of the split first written as ``parquet_file``."""
    return f"{Path(parquet_file).stem}/data-*.arrow"


def write_card(folder: Path, format: str, configs: Mapping[str, Mapping[str, str]], report: Mapping[str, Any]) -> None:
    """The README: the YAML header declares each config's files; the text says where the rows came from and what was
    left out."""
    data = DatasetCardData(configs=[
        {"config_name": config, "data_files": [{"split": split, "path": path} for split, path in files.items()]}
        for config, files in sorted(configs.items())])
    left_out = {name: info["left_out"] for name, info in report["splits"].items() if info["left_out"]}
    empty = [name for name, info in report["splits"].items() if info["file"] is None and not info.get("unpaired_file")]
    lines = [f"# {format} export of {Path(report['source']).name}", "",
             f"Written by prefdata {__version__} (`prefdata export --format {format}`). One config per phase: "
             f"`datasets.load_dataset(FOLDER, \"{next(iter(sorted(configs)), 'rm')}\")`.", ""]
    if empty:
        lines += [f"Splits with no rows in this format (no file written): {', '.join(empty)}.", ""]
    if left_out:
        lines += ["Rows left out (the format cannot express them), per split: "
                  + "; ".join(f"{name}: {counts}" for name, counts in left_out.items()) + ".", ""]
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)).save(folder / README)


def dataset_info(configs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """LLaMA-Factory's `dataset_info.json` entries, one per file: ShareGPT formatting with its column and tag names;
    ``ranking`` for pairs (rm), ``kto_tag`` for labelled replies, plain conversations for sft and ppo."""
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
            "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
    entries: dict[str, Any] = {}
    for config, files in sorted(configs.items()):
        columns: dict[str, str] = {"messages": "conversations", "system": "system"}
        entry: dict[str, Any] = {"formatting": "sharegpt"}
        if config == "rm":
            entry["ranking"] = True
            columns |= {"chosen": "chosen", "rejected": "rejected"}
        elif config == "rm_unpaired":
            columns["kto_tag"] = "kto_tag"
        for path in files.values():
            entries[Path(path).stem] = {"file_name": path, **entry, "columns": columns, "tags": tags}
    return entries
