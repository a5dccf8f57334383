"""`verify_directory` and `output_lock`: the two seams every verb uses to trust what is on disk (issue #10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.storage.dataset import verify_directory
from prefdata.storage.publish import lock_path, output_lock

ROWS = [make_row([{"role": "user", "content": f"Question {i}?"}], f"Yes {i}.", f"No {i}.", source="t")
        for i in range(20)]


def _shard(directory):
    return next((directory / "train").glob("data-*.arrow"))


def test_a_sound_directory_verifies(tmp_path):
    manifest = verify_directory(write_dataset(tmp_path / "d", ROWS))
    assert manifest["splits"]["train"]["rows"] == len(ROWS)


def test_a_flipped_byte_is_refused_naming_the_shard(tmp_path):
    directory = write_dataset(tmp_path / "d", ROWS)
    shard = _shard(directory)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x20
    shard.write_bytes(bytes(data))
    with pytest.raises(PrefdataError, match="checksum") as caught:
        verify_directory(directory)
    assert str(shard) in str(caught.value)
    verify_directory(directory, checksums=False)  # same size: only the checksum can tell


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_truncated_or_deleted_shard_is_refused(tmp_path, damage):
    directory = write_dataset(tmp_path / "d", ROWS)
    shard = _shard(directory)
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        shard.unlink()
    with pytest.raises(PrefdataError, match="missing" if damage == "delete" else "bytes"):
        verify_directory(directory, checksums=False)


def test_edited_row_counts_are_refused(tmp_path):
    directory = write_dataset(tmp_path / "d", ROWS)
    manifest = json.loads((directory / "prefdata.json").read_text())
    manifest["splits"]["train"]["rows"] = len(ROWS) + 1
    (directory / "prefdata.json").write_text(json.dumps(manifest))
    with pytest.raises(PrefdataError, match="do not add up"):
        verify_directory(directory)


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, what="dataset"):
        code = ("import sys\nfrom prefdata.storage.publish import output_lock\nfrom prefdata.contract.errors import "
                "PrefdataError\ntry:\n    with output_lock(sys.argv[1], what='dataset'):\n        print('got it')\n"
                "except PrefdataError as e:\n    print(e)\n")
        done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)
        assert f"PID {os.getpid()}" in done.stdout and "another prefdata process" in done.stdout
    with output_lock(out):  # released: the next writer gets it
        pass
    assert lock_path(out).name == ".out.lock"


def test_an_edited_descriptive_field_of_the_manifest_is_refused(tmp_path):
    """Shard checksums protect the data; the manifest's own checksum protects what it says (the command, warnings)."""
    directory = write_dataset(tmp_path / "d", ROWS)
    path = directory / "prefdata.json"
    manifest = json.loads(path.read_text())
    assert "manifest_sha256" in manifest
    path.write_text(json.dumps({**manifest, "command": "tset"}))
    with pytest.raises(PrefdataError, match="edited or damaged"):
        verify_directory(directory)


def test_a_manifest_from_before_the_checksum_is_still_read(tmp_path):
    directory = write_dataset(tmp_path / "d", ROWS)
    path = directory / "prefdata.json"
    manifest = json.loads(path.read_text())
    del manifest["manifest_sha256"]
    path.write_text(json.dumps(manifest))
    assert verify_directory(directory)["splits"]["train"]["rows"] == len(ROWS)
