"""Exports of a prefdata directory to what trainers read as is: TRL, DeepSpeed-Chat, ChatLLaMA, JSONL, Parquet.

Each split of the input has a phase (`prefdata.contract.phases`): `sft_*`, `rm_*`, `ppo_*` from `prefdata split`; any
other split gets the phase its rows allow (all pairs: rm; all with a reply: sft; else ppo). A phase exports what it can
use of a row (design §1): sft the prompt and chosen reply, rm the pair, ppo the prompt. Output folders are written beside the target and renamed into
place, so a crash never leaves a half export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import phase_of_rows, phase_of_split, require_preference_rows, serves
from prefdata.contract.render import render
from prefdata.contract.row import PREFERENCE_SCHEMA
from prefdata.pipeline.progress import progress
from prefdata.storage.dataset import load, read_manifest
from prefdata.storage.publish import (
    check_output_dir,
    is_output_error,
    output_error,
    output_lock,
    publish_dir,
    temp_sibling,
    write_json_atomic,
)
from prefdata.storage.rows import python_rows

FORMATS = ("trl", "dschat", "chatllama", "jsonl", "parquet")
CONTAINERS = ("jsonl", "parquet", "arrow")
EXPORT_MANIFEST = "prefdata-export.json"
CHATLLAMA_FILES = {"sft": "actor_training_data", "rm": "reward_training_data", "ppo": "rlhf_training_data"}
_BATCH = 4096


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def to_trl(row: Mapping[str, Any], phase: str) -> dict[str, Any] | None:
    """TRL conversational formats with an explicit prompt: preference (rm), prompt-completion (sft), prompt-only (ppo)."""
    if not serves(row, phase):
        return None
    prompt = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    if phase == "rm":
        return {"prompt": prompt, "chosen": _assistant(row["chosen"]), "rejected": _assistant(row["rejected"])}
    if phase == "sft":
        return {"prompt": prompt, "completion": _assistant(row["chosen"])}
    return {"prompt": prompt}


def to_dschat(row: Mapping[str, Any], phase: str) -> dict[str, Any] | None:
    """DeepSpeed-Chat `local/jsonfile`: prompt ends with "Assistant:"; DS-Chat itself puts " " before each reply."""
    if not serves(row, phase):
        return None
    return {"prompt": render(row["prompt"], template="dschat"),
            "chosen": row.get("chosen") if phase != "ppo" else None,
            "rejected": row.get("rejected") if phase == "rm" else None}


def chatllama_input(prompt: list[Mapping[str, str]]) -> str:
    """ChatLLaMA's `user_input` is one string: a lone user turn as is, a longer conversation in the dschat rendering."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return render(prompt, template="dschat")


def to_chatllama(row: Mapping[str, Any], phase: str) -> list[dict[str, Any]]:
    """actor: user_input/completion; reward: one entry per reply with its score (1/0 for an unscored pair);
    rlhf: user_input."""
    if not serves(row, phase):
        return []
    user_input = chatllama_input(row["prompt"])
    if phase == "sft":
        return [{"user_input": user_input, "completion": row["chosen"]}]
    if phase == "rm":
        chosen_score, rejected_score = row.get("chosen_score"), row.get("rejected_score")
        if chosen_score is None or rejected_score is None:
            chosen_score, rejected_score = 1.0, 0.0
        return [{"user_input": user_input, "completion": row["chosen"], "score": chosen_score},
                {"user_input": user_input, "completion": row["rejected"], "score": rejected_score}]
    return [{"user_input": user_input}]


def _iter_split(dataset) -> Iterator[dict[str, Any]]:
    for batch in dataset.with_format("arrow").iter(batch_size=_BATCH):
        yield from python_rows(batch)  # messages as written: no null tool fields


def _phase_of(name: str, dataset) -> str:
    """The split's phase by its name, else by its rows (read only then)."""
    return phase_of_split(name) or phase_of_rows(_iter_split(dataset))


def export_dataset(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str,
    container: str = "jsonl",
    splits: list[str] | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Export ``directory`` to ``out`` in ``format``; returns a report (also written to `out/prefdata-export.json`)."""
    if format not in FORMATS:
        raise PrefdataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", field="format")
    if container not in CONTAINERS:
        raise PrefdataError(f"unknown container {container!r}; choose one of {', '.join(CONTAINERS)}", field="container")
    if push_to_hub and format in ("dschat", "chatllama"):
        raise PrefdataError(f"--push-to-hub works with trl, jsonl and parquet, not {format}", field="push_to_hub")
    out = Path(out)
    if format in ("trl", "dschat", "chatllama"):
        require_preference_rows(read_manifest(directory).get("schema", ""), f"export --format {format}", str(directory))
    dataset_dict = load(directory)  # verified: a damaged input is refused before anything is written
    manifest = read_manifest(directory)
    names = splits or list(dataset_dict)
    for name in names:
        if name not in dataset_dict:
            raise PrefdataError(f"has no split {name!r} (it has {', '.join(dataset_dict)})", file=str(directory))
    report: dict[str, Any] = {"source": str(directory), "source_fingerprints": {n: manifest["splits"][n]["fingerprint"]
                              for n in names if n in manifest.get("splits", {})},
                              "format": format, "container": container if format == "trl" else None, "splits": {}}
    with output_lock(out, what="export"):
        check_output_dir(out, overwrite, marker=EXPORT_MANIFEST, what="export")
        try:
            with temp_sibling(out, what="export") as tmp:
                _write_export(dataset_dict, names, tmp, format, container, report, quiet)
                publish_dir(tmp, out)
        except OSError as e:
            if is_output_error(e, out.parent):
                raise output_error(e, out, "export") from None
            raise
    if push_to_hub:
        push_dataset(out, format, container, names, push_to_hub, private=private)
        report["pushed_to"] = push_to_hub
    return report


def _write_export(dataset_dict, names: list[str], tmp: Path, format: str, container: str, report: dict[str, Any],
                  quiet: bool) -> None:
    """Every chosen split converted into ``tmp``, with the export manifest; ``report`` gets each split's counts."""
    sinks: dict[Path, _Sink] = {}
    for name in names:
        dataset = dataset_dict[name]
        phase = _phase_of(name, dataset)
        path = _target(tmp, format, container, name, phase)
        if path not in sinks:
            sinks[path] = _Sink(path, _schema(format, phase))
        sink, written, skipped = sinks[path], 0, 0
        for row in progress(_iter_split(dataset), desc=f"export {name}", total=len(dataset), quiet=quiet, unit="row"):
            items = _convert(row, format, phase)
            skipped += not items
            for item in items:
                sink.write(item)
                written += 1
        report["splits"][name] = {"phase": phase, "rows_in": len(dataset), "rows_out": written,
                                  "skipped_unusable": skipped, "file": str(path.relative_to(tmp))}
    for sink in sinks.values():
        sink.close()
    if format == "dschat":  # DS-Chat's loader needs both train.json and eval.json in a folder
        for folder in {p.parent for p in sinks}:
            for part in ("train", "eval"):
                if not (folder / f"{part}.json").exists():
                    _Sink(folder / f"{part}.json", None).close()
    if format == "trl" and container == "arrow":
        _parquet_to_arrow(tmp, names, quiet)
    write_json_atomic(tmp / EXPORT_MANIFEST, report)


def export_summary(report: Mapping[str, Any], out: str | os.PathLike) -> str:
    """The line `prefdata export` ends with."""
    total = sum(s["rows_out"] for s in report["splits"].values())
    parts = ", ".join(f"{n} {s['rows_out']:,}" for n, s in report["splits"].items())
    return f"exported {total:,} rows ({parts}) as {report['format']} to {out}"


def _convert(row: Mapping[str, Any], format: str, phase: str) -> list[dict[str, Any]]:
    if format == "trl":
        item = to_trl(row, phase)
    elif format == "dschat":
        item = to_dschat(row, phase)
    elif format == "chatllama":
        return to_chatllama(row, phase)
    else:
        item = dict(row)
    return [] if item is None else [item]


def _target(tmp: Path, format: str, container: str, name: str, phase: str) -> Path:
    """Where a split goes: DS-Chat <phase>/{train,eval}.json, ChatLLaMA's fixed names, else <split>.<ext>."""
    is_eval = name.endswith("_eval") or name in ("eval", "test", "validation")
    if format == "dschat":
        return tmp / phase / ("eval.json" if is_eval else "train.json")
    if format == "chatllama":
        stem = CHATLLAMA_FILES[phase]
        return tmp / f"{stem.replace('_training_', '_eval_') if is_eval else stem}.json"
    if format == "parquet" or (format == "trl" and container in ("parquet", "arrow")):
        return tmp / f"{name}.parquet"
    return tmp / f"{name}.jsonl"


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TRL_SCHEMAS = {
    "rm": pa.schema([("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES)]),
    "sft": pa.schema([("prompt", _MESSAGES), ("completion", _MESSAGES)]),
    "ppo": pa.schema([("prompt", _MESSAGES)]),
}


def _schema(format: str, phase: str) -> pa.Schema | None:
    if format == "trl":
        return TRL_SCHEMAS[phase]
    if format == "parquet":
        return PREFERENCE_SCHEMA
    return None


class _Sink:
    """Streams items to one file: JSON Lines, a JSON array (DS-Chat, ChatLLaMA) or Parquet, by the file's suffix."""

    def __init__(self, path: Path, schema: pa.Schema | None) -> None:
        self.path, self.schema, self.count, self._buffer = path, schema, 0, []
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(path, schema)
        else:
            self._file = open(path, "w", encoding="utf-8")
            if path.suffix == ".json":
                self._file.write("[")

    def write(self, item: dict[str, Any]) -> None:
        if self.path.suffix == ".parquet":
            self._buffer.append(item)
            if len(self._buffer) >= _BATCH:
                self._flush()
        elif self.path.suffix == ".json":
            self._file.write(("\n" if not self.count else ",\n") + json.dumps(item, ensure_ascii=False))
        else:
            self._file.write(json.dumps(item, ensure_ascii=False) + "\n")
        self.count += 1

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self._buffer = []

    def close(self) -> None:
        if self.path.suffix == ".parquet":
            self._flush()
            self._writer.close()
            return
        if self.path.suffix == ".json":
            self._file.write("\n]\n")
        self._file.close()


def _parquet_to_arrow(tmp: Path, names: list[str], quiet: bool) -> None:
    """The `datasets` folder layout (save_to_disk) from the Parquet files just written."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict
    from datasets.utils import logging as datasets_logging

    dataset_dict = DatasetDict({n: Dataset(pq.read_table(tmp / f"{n}.parquet", memory_map=True)) for n in names})
    shown = datasets_logging.is_progress_bar_enabled()
    if quiet and shown:
        datasets_logging.disable_progress_bar()
    try:
        dataset_dict.save_to_disk(str(tmp))
    finally:
        if quiet and shown:
            datasets_logging.enable_progress_bar()
    for name in names:
        (tmp / f"{name}.parquet").unlink()


def push_dataset(out: Path, format: str, container: str, names: list[str], repo: str, *, private: bool = False) -> None:
    """Upload the written export with `datasets.DatasetDict.push_to_hub`; the token comes from the environment."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise PrefdataError("HF_HUB_OFFLINE is set: cannot push to the Hugging Face Hub", field="push_to_hub")
    from datasets import Dataset, DatasetDict, load_from_disk

    if format == "trl" and container == "arrow":
        dataset_dict = load_from_disk(str(out))
    elif format == "parquet" or container == "parquet":
        dataset_dict = DatasetDict({n: Dataset.from_parquet(str(out / f"{n}.parquet")) for n in names})
    else:
        dataset_dict = DatasetDict({n: Dataset.from_json(str(out / f"{n}.jsonl")) for n in names})
    try:
        dataset_dict.push_to_hub(repo, private=private)
    except Exception as e:  # network, auth or permission: the user's environment, not a bug
        raise PrefdataError(f"push to {repo} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                            field="push_to_hub") from None
