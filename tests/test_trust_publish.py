"""Issue #10 class 5 at the library level: the publish step cleans up after itself on every failure, and the next
writer clears (or restores) what a killed one left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from prefdata.storage.dataset import DatasetWriter
from prefdata.storage.publish import (
    lock_path,
    output_lock,
    publish_dir,
    remove_stale_siblings,
    terminate_unwinds,
    write_json_atomic,
)


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_siblings_of_a_dead_process_are_removed_and_reported(tmp_path, capsys):
    out = tmp_path / "out"
    dead, alive = _dead_pid(), subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                                stdin=subprocess.PIPE)
    try:
        for name in (f".out.tmp-{dead}", f".out.tmp-{alive.pid}", ".other.tmp-1"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "shard").write_bytes(b"x" * 100)
        removed = remove_stale_siblings(out)
    finally:
        alive.communicate(b"")
    assert [p.name for p in removed] == [f".out.tmp-{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".out.tmp-{alive.pid}", ".other.tmp-1"])
    assert f"removed {tmp_path / f'.out.tmp-{dead}'}" in capsys.readouterr().err


def test_an_output_lost_between_the_two_renames_is_restored(tmp_path, capsys):
    out, dead = tmp_path / "out", _dead_pid()
    old = tmp_path / f".out.old-{dead}"
    old.mkdir()
    (old / "prefdata.json").write_text("{}")
    (tmp_path / f".out.tmp-{dead}").mkdir()
    remove_stale_siblings(out)
    assert (out / "prefdata.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert "restored" in capsys.readouterr().err


def test_a_failed_publish_keeps_the_old_output_and_removes_the_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(FileNotFoundError):  # the second rename fails (its source is gone): the old output goes back
        publish_dir(tmp_path / ".out.tmp-1", out)
    assert (out / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    tmp = tmp_path / ".elsewhere.tmp-1"
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError):
        publish_dir(tmp, tmp_path / "a-file" / "out")  # a file where a folder should be
    assert not tmp.exists()


def test_a_non_utf8_name_in_json_is_escaped_and_reads_back(tmp_path):
    path = tmp_path / "m.json"
    value = {"out": "/tmp/out-\udcff", "name": "数据"}
    write_json_atomic(path, value)
    assert json.loads(path.read_bytes().decode("ascii")) == value
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_an_error_in_commit_removes_the_temporary_and_releases_the_lock(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", command="test")
    writer.count_in(2)  # two records in, none out: the counts cannot reconcile
    with pytest.raises(RuntimeError, match="reconcile"):
        writer.commit()
    assert list(tmp_path.iterdir()) == []
    with output_lock(tmp_path / "ds"):  # released: the next writer gets it at once
        assert lock_path(tmp_path / "ds").exists()
    assert list(tmp_path.iterdir()) == []


def test_terminate_unwinds_only_inside_the_block_and_keeps_a_later_handler():
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with terminate_unwinds():
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    def other(signum, frame) -> None:
        pass

    try:
        with terminate_unwinds():
            signal.signal(signal.SIGTERM, other)
        assert signal.getsignal(signal.SIGTERM) is other
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
