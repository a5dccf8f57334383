"""`prefdata.storage.publish`: refusing to clobber, replacing an output in one rename, writing JSON atomically."""

from __future__ import annotations

import json

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.storage.publish import MANIFEST, check_output_dir, publish_dir, write_json_atomic


def test_check_output_dir_accepts_a_new_or_empty_path(tmp_path):
    check_output_dir(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", overwrite=True)


def test_check_output_dir_refuses_files_existing_outputs_and_foreign_directories(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrefdataError, match="exists and is not a directory"):
        check_output_dir(tmp_path / "file", overwrite=True)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / MANIFEST).write_text("{}")
    with pytest.raises(PrefdataError, match="pass --overwrite"):
        check_output_dir(ours, overwrite=False)
    check_output_dir(ours, overwrite=True)
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PrefdataError, match="not a prefdata export directory"):
        check_output_dir(foreign, overwrite=True, marker="prefdata-export.json", what="export")


def test_publish_dir_moves_a_new_output_into_place(tmp_path):
    tmp, out = tmp_path / ".out.tmp", tmp_path / "out"
    tmp.mkdir()
    (tmp / "a.txt").write_text("new")
    publish_dir(tmp, out)
    assert (out / "a.txt").read_text() == "new" and not tmp.exists()


def test_publish_dir_replaces_an_old_output_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    tmp = tmp_path / ".out.tmp"
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    publish_dir(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_json_atomic_writes_readable_utf8_and_no_temporary(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("stale")
    write_json_atomic(path, {"name": "数据", "n": [1, 2]})
    assert path.read_text(encoding="utf-8") == '{\n  "name": "数据",\n  "n": [\n    1,\n    2\n  ]\n}\n'
    assert json.loads(path.read_text(encoding="utf-8")) == {"name": "数据", "n": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
