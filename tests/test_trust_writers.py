"""Issue #10 classes 3-5 through the real CLI in real processes: one writer per output, no leftovers after errors,
SIGTERM, SIGINT or SIGKILL, and hostile ``--out`` paths or a full disk ending in one line with nothing left behind."""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

import pytest
from trust_support import assert_one_line_error, cli, leftovers, resume, start_paused, write_jsonl

WRITER_PAUSE = ("prefdata.storage.dataset", "DatasetWriter.split")  # called once the lock and temp dir exist
EXPORT_PAUSE = ("prefdata.jobs.export", "_target")  # called while the export's temp dir is being filled


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small imported dataset (the input of split and export)."""
    folder = tmp_path_factory.mktemp("input")
    done = cli("import", write_jsonl(folder / "in.jsonl", 60), "--out", folder / "ds", "--quiet")
    assert done.returncode == 0, done.stderr
    return folder / "ds"


def _verb(verb: str, dataset: Path, out: Path, *extra) -> list:
    if verb == "import":
        return ["import", dataset.parent / "in.jsonl", "--out", out, "--quiet", *extra]
    if verb == "split":
        return ["split", dataset, "--out", out, "--quiet", *extra]
    return ["export", dataset, "--out", out, "--format", "trl", "--quiet", *extra]


def _pause_point(verb: str) -> tuple[str, str]:
    return EXPORT_PAUSE if verb == "export" else WRITER_PAUSE


@pytest.mark.parametrize("verb", ["import", "export"])
def test_a_second_writer_of_the_same_out_fails_at_once_naming_the_first(tmp_path, dataset, verb):
    out = tmp_path / "out"
    first = start_paused(*_pause_point(verb), *_verb(verb, dataset, out))
    try:
        second = cli(*_verb(verb, dataset, out), timeout=120)
        line = assert_one_line_error(second, contains=f"PID {first.pid}")
        assert "another prefdata process" in line
    finally:
        code, _, err = resume(first)
    assert code == 0, err  # the first writer is not disturbed, and its output is the one published
    assert out.is_dir() and leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("verb", ["import", "split", "export"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_remove_the_temporary_directory(tmp_path, dataset, verb, signum):
    out = tmp_path / "out"
    process = start_paused(*_pause_point(verb), *_verb(verb, dataset, out))
    assert any(name.startswith(".out.tmp-") for name in leftovers(tmp_path, "out"))
    process.send_signal(signum)
    code, _, err = resume(process)
    assert code == (143 if signum == signal.SIGTERM else 130), err
    assert "Traceback" not in err
    assert not out.exists() and leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("verb", ["import", "split", "export"])
def test_after_sigkill_the_next_run_removes_the_stale_temporary_and_says_so(tmp_path, dataset, verb):
    out = tmp_path / "out"
    process = start_paused(*_pause_point(verb), *_verb(verb, dataset, out))
    process.kill()
    process.communicate()
    stale = [name for name in leftovers(tmp_path, "out") if ".tmp-" in name]
    assert stale == [f".out.tmp-{process.pid}"]
    done = cli(*_verb(verb, dataset, out))
    assert done.returncode == 0, done.stderr
    assert f"removed {tmp_path / stale[0]}" in done.stderr and str(process.pid) in done.stderr
    assert out.is_dir() and leftovers(tmp_path, "out") == []


def _hostile_outs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a-file").write_text("not a folder")
    return {"under a regular file": tmp_path / "a-file" / "out",
            "under /proc": Path("/proc") / f"prefdata-out-{os.getpid()}",
            "an over-long name": tmp_path / ("x" * 300),
            "a name longer than its temporary sibling may be": tmp_path / ("y" * 250)}


@pytest.mark.parametrize("verb", ["import", "split", "export"])
@pytest.mark.parametrize("case", ["under a regular file", "under /proc", "an over-long name",
                                  "a name longer than its temporary sibling may be"])
def test_a_hostile_out_is_one_line_and_leaves_nothing(tmp_path, dataset, verb, case):
    work = tmp_path / "work"
    work.mkdir()
    out = _hostile_outs(work)[case]
    before = sorted(p.name for p in work.iterdir())
    done = cli(*_verb(verb, dataset, out))
    assert_one_line_error(done)
    assert sorted(p.name for p in work.iterdir()) == before


def test_a_non_utf8_out_name_is_written_or_refused_cleanly(tmp_path, dataset):
    """A name that is not UTF-8 reaches the manifest (options.out): it is escaped, never a traceback."""
    out = Path(os.fsdecode(bytes(tmp_path) + b"/out-\xff"))
    done = cli(*_verb("import", dataset, out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    done = cli("export", out, "--out", tmp_path / "exp", "--format", "jsonl")
    if done.returncode:
        assert_one_line_error(done, contains="not valid UTF-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # CPython ignores SIGXFSZ: writes raise EFBIG
    return apply


@pytest.mark.parametrize("verb", ["import", "split", "export"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, dataset, verb):
    out = tmp_path / "out"
    args = _verb(verb, dataset, out)
    done = cli(*args, preexec_fn=_file_size_limit(4096))
    assert_one_line_error(done, contains="File too large")
    assert not out.exists() and leftovers(tmp_path, "out") == []


def test_the_lock_is_released_for_the_next_writer(tmp_path, dataset):
    out = tmp_path / "out"
    assert cli(*_verb("import", dataset, out)).returncode == 0
    again = cli(*_verb("import", dataset, out), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert leftovers(tmp_path, "out") == []


if sys.platform != "linux":  # signals, /proc and RLIMIT_FSIZE as Linux has them
    pytestmark = pytest.mark.skip("Linux only")
