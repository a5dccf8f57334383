"""`SplitWriter` writes, with pyarrow alone, the very bytes `datasets` writes (`prefdata.storage.arrow_format`).

The reference is the installed `datasets` itself: `ArrowWriter(features=...)` + `write_table` + `finalize` per shard,
and `dataclasses.asdict(DatasetInfo(features=...))` for ``dataset_info.json``, exactly as `SplitWriter` used them
before. A `datasets` release that changes its format (metadata, batch size, feature spelling) fails here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pytest
from datasets import DatasetInfo, Features, config, load_from_disk
from datasets.arrow_writer import ArrowWriter, get_arrow_writer_batch_size_from_features

from prefdata.contract.row import PREFERENCE_SCHEMA_ID, PREFERENCE_V1_SCHEMA_ID, SCHEMAS, UNSUP_SCHEMA_ID
from prefdata.storage.arrow_format import WRITER_BATCH_ROWS, features_json
from prefdata.storage.dataset import SplitWriter

ROWS_PER_FLUSH = 4096  # SplitWriter buffers this many rows written one by one before it writes them as a table


def preference_row(i: int) -> dict:
    """Rows with every shape a column takes: several messages, nulls, scores, non-ASCII text, empty strings."""
    prompt = [{"role": "user", "content": f"question {i} é 字"}]
    if i % 3 == 0:
        prompt = [{"role": "system", "content": ""}, *prompt, {"role": "assistant", "content": "ok"}, *prompt]
    row = {"id": f"{i:016x}", "source": "test/src", "group": f"g{i % 7}", "prompt": prompt,
           "chosen": None if i % 5 == 0 else f"good {i}", "rejected": None if i % 2 else f"bad {i} \n\"",
           "chosen_score": None if i % 4 else i / 3, "rejected_score": -1.5 if i % 6 == 0 else None,
           "meta": json.dumps({"n": i}) if i % 2 else "{}"}
    if i % 7 == 0:  # the /2 columns (a /1 table leaves them out): a continuation with a tool call, a label
        call = '[{"function":{"arguments":"{}","name":"f"},"id":"c1","type":"function"}]'
        row["chosen"], row["chosen_turns"] = None, [
            {"role": "assistant", "content": "", "tool_calls": call},
            {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "f"},
            {"role": "assistant", "content": f"good {i}"}]
        row["label"] = i % 2 == 0
    return row


def unsup_row(i: int) -> dict:
    return {"id": f"{i:016x}", "source": "test/text", "text": f"text {i} ü" * (i % 4), "meta": "{}"}


ROW_MAKERS = {PREFERENCE_SCHEMA_ID: preference_row, UNSUP_SCHEMA_ID: unsup_row,
              PREFERENCE_V1_SCHEMA_ID: preference_row}  # /1 is only read, but its shards are datasets' all the same


def table(schema_id: str, start: int, stop: int) -> pa.Table:
    return pa.Table.from_pylist([ROW_MAKERS[schema_id](i) for i in range(start, stop)], schema=SCHEMAS[schema_id])


def datasets_shard(path: Path, schema_id: str, tables: list[pa.Table]) -> bytes:
    """One shard as `datasets`' `ArrowWriter` writes these tables."""
    writer = ArrowWriter(features=Features.from_arrow_schema(SCHEMAS[schema_id]), path=str(path))
    for part in tables:
        writer.write_table(part)
    writer.finalize()
    writer.close()
    return path.read_bytes()


def datasets_info(schema_id: str) -> str:
    info = dataclasses.asdict(DatasetInfo(features=Features.from_arrow_schema(SCHEMAS[schema_id])))
    return json.dumps({key: info[key] for key in sorted(info)}, indent=2)


def written_shards(directory: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("data-*.arrow"))]


@pytest.mark.parametrize("schema_id", list(SCHEMAS))
def test_the_datasets_constants_hold_for_each_schema(schema_id):
    features = Features.from_arrow_schema(SCHEMAS[schema_id])
    assert get_arrow_writer_batch_size_from_features(features) is None  # so ArrowWriter takes the default …
    assert WRITER_BATCH_ROWS == config.DEFAULT_MAX_BATCH_SIZE  # … which is ours
    assert pa.schema(features.type) == SCHEMAS[schema_id]  # the shard schema is the contract's, field for field
    assert features_json(SCHEMAS[schema_id], defaults=False) == json.loads(
        ArrowWriter._build_metadata(DatasetInfo(features=features))["huggingface"])["info"]["features"]


@pytest.mark.parametrize("schema_id", list(SCHEMAS))
def test_one_shard_of_rows_and_tables_is_byte_identical(tmp_path, schema_id):
    rows = ROWS_PER_FLUSH + 1500  # one full flush, then a partial one, then a table of odd batches
    chunked = pa.concat_tables([table(schema_id, rows, rows + 700), table(schema_id, rows + 700, rows + 2345)])
    writer = SplitWriter(tmp_path / "ours", "train", schema_id, max_shard_bytes=1 << 40)
    for i in range(rows):
        writer.write(ROW_MAKERS[schema_id](i))
    writer.write_table(chunked)
    info = writer.close()

    expected = datasets_shard(tmp_path / "ref.arrow", schema_id,
                              [table(schema_id, 0, ROWS_PER_FLUSH), table(schema_id, ROWS_PER_FLUSH, rows), chunked])
    assert info["rows"] == rows + 2345
    assert written_shards(tmp_path / "ours") == [expected]
    assert (tmp_path / "ours" / "dataset_info.json").read_text(encoding="utf-8") == datasets_info(schema_id)


@pytest.mark.parametrize("schema_id", list(SCHEMAS))
def test_several_shards_are_byte_identical(tmp_path, schema_id):
    parts = [table(schema_id, 0, 10), table(schema_id, 10, 2011)]
    writer = SplitWriter(tmp_path / "ours", "train", schema_id, max_shard_bytes=1)  # every table closes its shard
    for part in parts:
        writer.write_table(part)
    for i in range(2011, 2011 + ROWS_PER_FLUSH + 3):
        writer.write(ROW_MAKERS[schema_id](i))
    info = writer.close()

    parts += [table(schema_id, 2011, 2011 + ROWS_PER_FLUSH), table(schema_id, 2011 + ROWS_PER_FLUSH, 2014 +
                                                                    ROWS_PER_FLUSH)]
    expected = [datasets_shard(tmp_path / f"ref-{n}.arrow", schema_id, [part]) for n, part in enumerate(parts)]
    assert [shard["file"] for shard in info["shards"]] == [f"data-0000{n}-of-00004.arrow" for n in range(4)]
    assert written_shards(tmp_path / "ours") == expected


@pytest.mark.parametrize("schema_id", list(SCHEMAS))
def test_an_empty_split_is_byte_identical_and_loads(tmp_path, schema_id):
    writer = SplitWriter(tmp_path / "ours", "eval", schema_id, max_shard_bytes=1 << 40)
    writer.close()
    expected = datasets_shard(tmp_path / "ref.arrow", schema_id, [SCHEMAS[schema_id].empty_table()])
    assert written_shards(tmp_path / "ours") == [expected]
    assert (tmp_path / "ours" / "dataset_info.json").read_text(encoding="utf-8") == datasets_info(schema_id)
    assert load_from_disk(str(tmp_path / "ours")).num_rows == 0


def test_a_type_without_a_datasets_spelling_is_refused():
    with pytest.raises(TypeError, match="int8"):
        features_json(pa.schema([("n", pa.int8())]), defaults=False)
