"""Issue #10, property: random byte damage (flip, truncate, delete, append) to any file of a dataset directory. Every
reading verb (split, export, stats, validate) either refuses (non-zero, one line, no traceback) or gives output
identical to the undamaged run; it never exits 0 with a different output.

What "output" means per verb: split and export, every file they publish (split's manifest without ``inputs``, which
records the sha256 of the input's manifest file and so honestly differs when that file's bytes do); stats, the data
card (README.md) and the figures; validate, its exit code and report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import run_cli, write_dataset

from prefdata.contract.row import make_row

ROWS = [make_row([{"role": "user", "content": f"Question {i}?"}], f"Yes, {i}.", f"No, {i}.", source="t",
                 group=f"g{i % 12}") for i in range(30)]
VERBS = ("split", "export", "stats", "validate")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _tree(directory: Path, skip: str | None = None) -> dict[str, str]:
    """Every published file's sha256 (a JSON manifest without its ``skip`` key)."""
    found = {}
    for path in _files(directory):
        data = path.read_bytes()
        if skip and path.name == "prefdata.json":
            manifest = json.loads(data)
            manifest.pop(skip, None)
            data = json.dumps(manifest, sort_keys=True).encode()
        found[str(path.relative_to(directory))] = hashlib.sha256(data).hexdigest()
    return found


def _run(capsys, verb: str, work: Path) -> tuple[int, object]:
    """Run one verb on ``work/d``; return (exit code, its output) and check a refusal is one clean line."""
    directory, out = work / "d", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    if verb == "split":
        argv = ["split", directory, "--out", out, "--quiet", "--ratio", "4,3,3", "--eval-fraction", "0.2"]
    elif verb == "export":
        argv = ["export", directory, "--out", out, "--format", "trl"]
    elif verb == "stats":
        argv = ["stats", directory]
    else:
        argv = ["validate", directory]
    code, stdout, stderr = run_cli(capsys, *argv)
    if code != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert "Traceback" not in stderr
        assert verb == "validate" or (len(lines) == 1 and lines[0].startswith("prefdata: error:")), stderr
        return code, None
    if verb == "split":
        return code, _tree(out, skip="inputs")
    if verb == "export":
        return code, _tree(out)
    if verb == "stats":
        return code, (stdout, (directory / "README.md").read_text(encoding="utf-8"))
    return code, stdout


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("clean") / "d", ROWS)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One folder for every run, so paths in the outputs are the same for damaged and undamaged copies."""
    return tmp_path_factory.mktemp("work")


_EXPECTED: dict[str, tuple[int, object]] = {}


def _expected(capsys, clean: Path, work: Path, verb: str) -> object:
    """The verb's output on an undamaged copy (computed once)."""
    if verb not in _EXPECTED:
        _fresh_copy(clean, work)
        _EXPECTED[verb] = _run(capsys, verb, work)
        assert _EXPECTED[verb][0] == 0
    return _EXPECTED[verb][1]


def _fresh_copy(clean: Path, work: Path) -> Path:
    shutil.rmtree(work / "d", ignore_errors=True)
    return Path(shutil.copytree(clean, work / "d"))


def _damage(directory: Path, file_index: int, kind: str, position: float, value: int) -> str:
    files = _files(directory)
    path = files[file_index % len(files)]
    data = bytearray(path.read_bytes())
    at = min(int(position * len(data)), max(len(data) - 1, 0))
    if kind == "delete":
        path.unlink()
    elif kind == "truncate":
        path.write_bytes(bytes(data[:at]))
    elif kind == "append":
        path.write_bytes(bytes(data) + bytes([value]))
    elif data:
        data[at] ^= value
        path.write_bytes(bytes(data))
    return f"{kind} {path.relative_to(directory)} at {at} with {value}"


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file_index=st.integers(0, 50), kind=st.sampled_from(["flip", "truncate", "delete", "append"]),
       position=st.floats(0, 1), value=st.integers(1, 255))
def test_damage_is_refused_or_changes_nothing(clean, work, capsys, file_index, kind, position, value):
    for verb in VERBS:
        expected = _expected(capsys, clean, work, verb)
        what = _damage(_fresh_copy(clean, work), file_index, kind, position, value)
        code, output = _run(capsys, verb, work)
        if code == 0:
            assert output == expected, f"{verb} exited 0 with a different output after: {what}"
