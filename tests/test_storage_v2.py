"""Storage of `prefdata.preference/2`: writers write /2 that `datasets` loads, rows read back as the dicts written, and
/1 directories (written here with the 0.2.0 schema) read as /2 with the same ids."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
from datasets import load_from_disk
from split_helpers import pair, unpaired
from support import write_dataset

from prefdata.contract.row import (
    PREFERENCE_SCHEMA,
    PREFERENCE_SCHEMA_ID,
    PREFERENCE_V1_SCHEMA,
    PREFERENCE_V1_SCHEMA_ID,
    make_row,
)
from prefdata.storage.dataset import DatasetWriter, iter_rows, load, load_tables, read_manifest
from prefdata.storage.rows import python_rows

Q = [{"role": "user", "content": "What is 6 x 7?"}]
CALL = [{"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a":6,"b":7}'}}]
TURNS = [{"role": "assistant", "content": "", "tool_calls": CALL},
         {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "mul"},
         {"role": "assistant", "content": "It is 42."}]


def v2_rows() -> list[dict]:
    tool_prompt = [{"role": "system", "content": "Use tools."}, *Q, TURNS[0], TURNS[1], {"role": "user", "content": "?"}]
    return [pair(1), make_row(Q, TURNS, "41.", source="s"), unpaired(2, True), unpaired(3, False),
            make_row(tool_prompt, "42.", source="s"), make_row(Q, None, TURNS, label=False, source="s"), pair(4)]


def write_v1_directory(path, rows: list[dict]):
    """A directory as prefdata 0.2.0 wrote it: `prefdata.preference/1` in the manifest, shards of the /1 schema
    (role/content messages, no /2 columns)."""
    with DatasetWriter(path, command="import", schema_id=PREFERENCE_V1_SCHEMA_ID) as writer:
        for row in rows:
            writer.count_in()
            writer.write({name: row[name] for name in PREFERENCE_V1_SCHEMA.names})
    return path


def test_writers_write_v2_and_rows_come_back_as_written(tmp_path):
    rows = v2_rows()
    directory = write_dataset(tmp_path / "d", rows)
    assert read_manifest(directory)["schema"] == PREFERENCE_SCHEMA_ID == "prefdata.preference/2"
    assert [row for _, row in iter_rows(directory)] == rows  # no null tool fields materialised as keys
    table = load_tables(directory)["train"]
    assert table.schema == PREFERENCE_SCHEMA and python_rows(table) == rows
    assert python_rows(table.slice(3, 2)) == rows[3:5]  # a slice (as datasets iterates) reads the same
    assert python_rows(table.slice(0, 1)) == rows[:1]  # a batch without tool fields


def test_datasets_load_from_disk_loads_a_v2_directory(tmp_path):
    rows = v2_rows()
    directory = write_dataset(tmp_path / "d", rows)
    dataset = load_from_disk(str(directory))["train"]
    assert dataset.num_rows == len(rows) and dataset.features.arrow_schema == PREFERENCE_SCHEMA
    assert dataset["id"] == [row["id"] for row in rows]
    assert dataset["label"] == [row["label"] for row in rows]
    turns = dataset[1]["chosen_turns"]  # datasets shows unset tool fields as nulls
    assert [m["role"] for m in turns] == ["assistant", "tool", "assistant"]
    assert json.loads(turns[0]["tool_calls"]) == CALL and turns[1]["tool_call_id"] == "c1"
    assert turns[2]["tool_calls"] is None
    assert load(directory)["train"]["id"] == dataset["id"]


def test_a_v1_directory_is_read_as_v2_with_the_same_ids(tmp_path):
    rows = [pair(1), make_row(Q, "42.", source="s"), make_row(Q, source="s"),
            make_row(Q, "42.", source="s", chosen_score=2.0), pair(2)]
    directory = write_v1_directory(tmp_path / "v1", rows)
    assert read_manifest(directory)["schema"] == "prefdata.preference/1"
    shard = next((directory / "train").glob("*.arrow"))
    with pa.memory_map(str(shard)) as source:  # what is on disk is the /1 schema, untouched
        assert pa.ipc.open_stream(source).schema.remove_metadata() == PREFERENCE_V1_SCHEMA
    assert [row for _, row in iter_rows(directory)] == rows
    table = load_tables(directory)["train"]
    assert table.schema == PREFERENCE_SCHEMA and python_rows(table) == rows
    assert table.column("label").null_count == table.column("chosen_turns").null_count == len(rows)
    dataset = load(directory)["train"]
    assert dataset.features.arrow_schema == PREFERENCE_SCHEMA and dataset["id"] == [row["id"] for row in rows]
    assert dataset["chosen"] == [row["chosen"] for row in rows]


def test_the_real_hh_file_keeps_its_v1_ids(tmp_path, capsys, hh_harmless_test):
    """Ids and groups of every row `download hh-rlhf` makes of the real harmless-base test file, as prefdata 0.2.0
    (/1) made them: the digest below was taken with 0.2.0 (`iter_rows` of its output, ``id group`` per line)."""
    from support import run_cli

    code, _, err = run_cli(capsys, "download", "hh-rlhf", "--from", hh_harmless_test.parent.parent, "--out",
                           tmp_path / "hh", "--quiet")
    assert code == 0, err
    lines = [f"{row['id']} {row['group']}" for _, row in iter_rows(tmp_path / "hh")]
    assert len(lines) == 2259
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16] == "1505484fd235835b"
