"""Exports of a prefdata directory to what trainers read as is: TRL, DeepSpeed-Chat, ChatLLaMA, LLaMA-Factory's
ShareGPT, JSONL, Parquet.

Each split of the input has a phase (`prefdata.contract.phases`): `sft_*`, `rm_*`, `ppo_*` from `prefdata split`; any
other split gets the phase its rows allow (all pairs: rm; all with a reply: sft; else ppo). A phase exports what it can
use of a row (`prefdata.jobs.export_formats`); a row the format cannot express is left out and counted by reason, an
empty part is not written (and named), never a 0-byte file or `[]`. The folder's README declares one config per phase
(`prefdata.jobs.export_card`). Output folders are written beside the target and renamed into place, so a crash never
leaves a half export, and a push is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import phase_of_rows, phase_of_split, require_preference_rows
from prefdata.contract.row import PREFERENCE_SCHEMA
from prefdata.jobs.export_card import DATASET_INFO, arrow_files, config_of, dataset_info, split_part, write_card
from prefdata.jobs.export_formats import CONVERTERS, LEFT_OUT, Conversion, has_tool_calls
from prefdata.pipeline.progress import progress
from prefdata.storage.dataset import load, read_manifest
from prefdata.storage.hub import check_push, hub_uploads, push_configs, quiet_datasets
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

FORMATS = ("trl", "dschat", "chatllama", "sharegpt", "jsonl", "parquet")
CONTAINERS = ("jsonl", "parquet", "arrow")
PUSHABLE = ("trl", "jsonl", "parquet")
EXPORT_MANIFEST = "prefdata-export.json"
CHATLLAMA_FILES = {"sft": "actor_training_data", "rm": "reward_training_data", "ppo": "rlhf_training_data"}
_BATCH = 4096


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
    if push_to_hub:
        if format not in PUSHABLE:
            raise PrefdataError(f"--push-to-hub works with {', '.join(PUSHABLE[:-1])} and {PUSHABLE[-1]}, not {format}",
                                field="push_to_hub")
        check_push(push_to_hub)  # before anything is written, here or on the Hub
    out = Path(out)
    if format not in ("jsonl", "parquet"):
        require_preference_rows(read_manifest(directory).get("schema", ""), f"export --format {format}", str(directory))
    dataset_dict = load(directory)  # verified: a damaged input is refused before anything is written
    manifest = read_manifest(directory)
    names = splits or list(dataset_dict)
    for name in names:
        if name not in dataset_dict:
            raise PrefdataError(f"has no split {name!r} (it has {', '.join(dataset_dict)})", file=str(directory))
    container = container if format == "trl" else None
    report: dict[str, Any] = {"source": str(directory), "source_fingerprints": {n: manifest["splits"][n]["fingerprint"]
                              for n in names if n in manifest.get("splits", {})},
                              "format": format, "container": container, "splits": {}}
    with contextlib.ExitStack() as pushing:
        with output_lock(out, what="export"):
            check_output_dir(out, overwrite, marker=EXPORT_MANIFEST, what="export")
            try:
                with temp_sibling(out, what="export") as tmp:
                    configs = _write_export(dataset_dict, names, tmp, format, container, report, quiet)
                    # every config loads, with one set of features, before anything is published or sent
                    uploads = pushing.enter_context(hub_uploads(tmp, configs)) if push_to_hub else {}
                    publish_dir(tmp, out)
            except OSError as e:
                if is_output_error(e, out.parent):
                    raise output_error(e, out, "export") from None
                raise
        if push_to_hub:
            push_configs(uploads, push_to_hub, private=private)
            report["pushed_to"] = push_to_hub
    return report


def _write_export(dataset_dict, names: list[str], tmp: Path, format: str, container: str | None,
                  report: dict[str, Any], quiet: bool) -> dict[str, dict[str, str]]:
    """Every chosen split converted into ``tmp``, with the export manifest and the README that declares one config per
    phase; ``report`` gets each split's counts. Returns the configs: {config: {split: file}}."""
    convert = CONVERTERS[format]
    sinks: dict[Path, _Sink] = {}
    configs: dict[str, dict[str, str]] = {}
    for name in names:
        dataset = dataset_dict[name]
        phase = _phase_of(name, dataset)
        written: Counter[str] = Counter()
        skipped, left_out = 0, Counter()
        for row in progress(_iter_split(dataset), desc=f"export {name}", total=len(dataset), quiet=quiet, unit="row"):
            conversion = convert(row, phase)
            if container in ("parquet", "arrow") and conversion.items and has_tool_calls(row):
                conversion = Conversion([], left_out="tool_calls")  # TRL_SCHEMAS' messages are role and content only
            if conversion.left_out:
                left_out[conversion.left_out] += 1
                continue
            skipped += not conversion.items
            if not conversion.items:
                continue
            path = _target(tmp, format, container, name, phase, conversion.part)
            if path not in sinks:
                sinks[path] = _Sink(path, _schema(format, phase, conversion.part))
            for item in conversion.items:
                sinks[path].write(item)
            written[conversion.part] += len(conversion.items)
        main = _target(tmp, format, container, name, phase, "")
        report["splits"][name] = {"phase": phase, "rows_in": len(dataset), "rows_out": sum(written.values()),
                                  "skipped_unusable": skipped, "left_out": dict(sorted(left_out.items())),
                                  "file": str(main.relative_to(tmp)) if main in sinks else None}
        for part in sorted(written):
            path = _target(tmp, format, container, name, phase, part)
            if part:
                report["splits"][name][f"{part}_file"] = str(path.relative_to(tmp))
            config, split = config_of(format, name, phase, part)
            configs.setdefault(config, {})[split] = str(path.relative_to(tmp))
    for sink in sinks.values():
        sink.close()
    if format == "dschat":
        _require_dschat_pairs(tmp, report)
    if container == "arrow":
        _parquet_to_arrow(tmp, [p for p in sinks if p.suffix == ".parquet"], quiet)
        configs = {c: {s: arrow_files(f) for s, f in files.items()} for c, files in configs.items()}
    report["configs"] = configs
    write_card(tmp, format, configs, report)
    if format == "sharegpt":
        write_json_atomic(tmp / DATASET_INFO, dataset_info(configs))
    write_json_atomic(tmp / EXPORT_MANIFEST, report)
    return configs


def _require_dschat_pairs(tmp: Path, report: Mapping[str, Any]) -> None:
    """DeepSpeed-Chat's `local/jsonfile` loads <phase>/train.json and eval.json together and refuses an empty one
    ("eval corresponds to no data"): a phase with one of them empty cannot be trained on, so it is refused."""
    for folder in sorted({tmp / s["file"].split("/")[0] for s in report["splits"].values() if s["file"]}):
        for part in ("train", "eval"):
            if not (folder / f"{part}.json").exists():
                raise PrefdataError(f"DeepSpeed-Chat needs {folder.name}/train.json and {folder.name}/eval.json, and no "
                                    f"exported split has {folder.name} {part} rows; export a split with them, or leave "
                                    f"the {folder.name} splits out with --splits", field="splits")


def export_summary(report: Mapping[str, Any], out: str | os.PathLike) -> str:
    """The line `prefdata export` ends with: rows per split, then what was not written and why."""
    total = sum(s["rows_out"] for s in report["splits"].values())
    parts = ", ".join(f"{n} {s['rows_out']:,}" for n, s in report["splits"].items())
    line = f"exported {total:,} rows ({parts}) as {report['format']} to {out}"
    empty = [n for n, s in report["splits"].items() if s["file"] is None and not s.get("unpaired_file")]
    if empty:
        line += f"; not written (no rows for the format): {', '.join(empty)}"
    left_out: Counter[str] = Counter()
    for info in report["splits"].values():
        left_out.update(info["left_out"])
    if left_out:
        line += "; left out: " + ", ".join(f"{n:,} {reason} ({LEFT_OUT[reason]})" for reason, n in sorted(left_out.items()))
    return line


def _target(tmp: Path, format: str, container: str | None, name: str, phase: str, part: str) -> Path:
    """Where a split goes: DS-Chat <phase>/{train,eval}.json, ChatLLaMA's fixed names, else <split>[_<part>].<ext>."""
    if format == "dschat":
        return tmp / phase / f"{split_part(name)}.json"
    if format == "chatllama":
        stem = CHATLLAMA_FILES[phase]
        return tmp / f"{stem.replace('_training_', '_eval_') if split_part(name) == 'eval' else stem}.json"
    stem = f"{name}_{part}" if part else name
    if format == "parquet" or container in ("parquet", "arrow"):
        return tmp / f"{stem}.parquet"
    return tmp / f"{stem}.{'json' if format == 'sharegpt' else 'jsonl'}"


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TRL_SCHEMAS = {
    "rm": pa.schema([("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES)]),
    "sft": pa.schema([("prompt", _MESSAGES), ("completion", _MESSAGES)]),
    "ppo": pa.schema([("prompt", _MESSAGES)]),
    "rm_unpaired": pa.schema([("prompt", _MESSAGES), ("completion", _MESSAGES), ("label", pa.bool_())]),
}


def _schema(format: str, phase: str, part: str) -> pa.Schema | None:
    if format == "trl":
        return TRL_SCHEMAS[f"{phase}_{part}" if part else phase]
    if format == "parquet":
        return PREFERENCE_SCHEMA
    return None


class _Sink:
    """Streams items to one file: JSON Lines, a JSON array (DS-Chat, ChatLLaMA, ShareGPT) or Parquet, by the file's
    suffix. Opened by the first item, so an empty part is never written."""

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


def _parquet_to_arrow(tmp: Path, files: list[Path], quiet: bool) -> None:
    """The `datasets` folder layout (save_to_disk) from the Parquet files just written."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    dataset_dict = DatasetDict({p.stem: Dataset(pq.read_table(p, memory_map=True)) for p in files})
    with quiet_datasets(quiet):
        dataset_dict.save_to_disk(str(tmp))
    for path in files:
        path.unlink()
