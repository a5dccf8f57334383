"""Issue #10 class 1 through the CLI: a damaged dataset directory (a flipped byte, a truncated or deleted shard, an
edited manifest count) is refused by split, export and stats with one line naming what is damaged, and nothing is
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli, write_dataset

from prefdata.contract.row import make_row
from prefdata.storage.dataset import iter_rows, load

ROWS = [make_row([{"role": "user", "content": f"Question {i}?"}], f"Yes {i}.", f"No {i}.", source="t", group=f"g{i}")
        for i in range(30)]


def _shard(directory: Path) -> Path:
    return next((directory / "train").glob("data-*.arrow"))


def _flip(directory: Path) -> Path:
    shard = _shard(directory)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    return shard


def _truncate(directory: Path) -> Path:
    shard = _shard(directory)
    shard.write_bytes(shard.read_bytes()[:-100])
    return shard


def _delete(directory: Path) -> Path:
    shard = _shard(directory)
    shard.unlink()
    return shard


def _edit_count(field: str):
    def edit(directory: Path) -> Path:
        path = directory / "prefdata.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if field == "shard rows":  # split rows and shard rows edited together: only the shard itself disagrees
            manifest["splits"]["train"]["shards"][0]["rows"] += 1
            manifest["splits"]["train"]["rows"] += 1
            manifest["counts"]["rows_out"] += 1
            manifest["counts"]["records_in"] += 1
        else:
            manifest["counts"][field] += 1
        path.write_text(json.dumps(manifest), encoding="utf-8")
        return path if field != "shard rows" else _shard(directory)
    return edit


DAMAGE = {"flipped byte": (_flip, "checksum"), "truncated shard": (_truncate, "bytes"),
          "deleted shard": (_delete, "missing"), "edited rows_out": (_edit_count("rows_out"), "rows_out"),
          "edited records_in": (_edit_count("records_in"), "reconcile"),
          "edited shard rows": (_edit_count("shard rows"), "rows")}


def _command(verb: str, directory: Path, out: Path) -> list:
    if verb == "split":
        return ["split", directory, "--out", out, "--quiet"]
    if verb == "export":
        return ["export", directory, "--out", out, "--format", "trl", "--quiet"]
    return ["stats", directory]


@pytest.mark.parametrize("verb", ["split", "export", "stats"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_directory_is_refused_with_one_line_and_nothing_written(tmp_path, capsys, verb, damage):
    directory = write_dataset(tmp_path / "d", ROWS)
    make_damage, words = DAMAGE[damage]
    damaged = make_damage(directory)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run_cli(capsys, *_command(verb, directory, tmp_path / "out"))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prefdata: error:"), err
    assert str(damaged) in lines[0] and words in lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no output, no card, no temp


def test_library_readers_refuse_too(tmp_path):
    """`load` and `iter_rows` (what score and the trainers read through) refuse a damaged directory."""
    from prefdata.contract.errors import PrefdataError

    directory = write_dataset(tmp_path / "d", ROWS)
    assert [row["id"] for _, row in iter_rows(directory)] == [row["id"] for row in ROWS]
    _flip(directory)
    with pytest.raises(PrefdataError, match="checksum"):
        load(directory)
    with pytest.raises(PrefdataError, match="checksum"):
        next(iter(iter_rows(directory)))


def test_a_sound_directory_reads_as_written_even_if_datasets_state_files_are_damaged(tmp_path):
    """The shards are found through the manifest, not datasets' own state.json, so damage there cannot swap shards."""
    directory = write_dataset(tmp_path / "d", ROWS)
    (directory / "train" / "state.json").write_text("{not json", encoding="utf-8")
    assert [row["id"] for _, row in iter_rows(directory)] == [row["id"] for row in ROWS]


def test_an_edited_schema_id_is_refused(tmp_path):
    from prefdata.contract.errors import PrefdataError
    from prefdata.contract.row import SCHEMAS

    directory = write_dataset(tmp_path / "d", ROWS)
    path = directory / "prefdata.json"
    written = path.read_text(encoding="utf-8")
    for other in (s for s in SCHEMAS if s != "prefdata.preference/2"):  # /1 too: a /2 shard is no /1 shard
        path.write_text(written.replace('"prefdata.preference/2"', json.dumps(other)), encoding="utf-8")
        with pytest.raises(PrefdataError, match="columns"):
            load(directory)
