"""Helpers for the issue #10 trust tests: the real CLI in a subprocess, paused at a chosen point, and what a run left.

`start_paused` runs ``python -c PAUSE module attribute prefdata ARGS…``: the real `prefdata` command, with
``module.attribute`` wrapped so that its first call prints ``paused`` and waits for a line on stdin. The test then knows
exactly where the process is (holding its output lock, its temporary directory made) without sleeping or racing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PAUSE = """
import functools, importlib, sys
module_name, attribute, *argv = sys.argv[1:]
owner_name, _, name = attribute.rpartition(".")
owner = importlib.import_module(module_name)
for part in filter(None, owner_name.split(".")):
    owner = getattr(owner, part)
original = getattr(owner, name)
state = {"paused": False}

@functools.wraps(original)
def paused(*args, **kwargs):
    if not state["paused"]:
        state["paused"] = True
        print("paused", flush=True)
        sys.stdin.readline()
    return original(*args, **kwargs)

setattr(owner, name, paused)
from prefdata.cli import main
main(argv)
"""


def env() -> dict[str, str]:
    """The environment of a CLI subprocess (run in REPO, which `python -m` puts first on the path): that tree first on
    the path, no colours, no network."""
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def cli(*argv, timeout: float = 300, preexec_fn=None) -> subprocess.CompletedProcess:
    """``prefdata ARGV…`` in its own process; returns its exit code, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "prefdata", *map(os.fsdecode, argv)], capture_output=True, text=True,
                          errors="backslashreplace", timeout=timeout, env=env(), preexec_fn=preexec_fn, cwd=REPO)


def start_paused(module: str, attribute: str, *argv) -> subprocess.Popen:
    """The CLI paused at the first call of ``module.attribute`` (it has printed ``paused`` when this returns)."""
    process = subprocess.Popen([sys.executable, "-c", PAUSE, module, attribute, *map(str, argv)], env=env(), cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_interruptible)
    line = process.stdout.readline()
    if line.strip() != "paused":
        process.kill()
        raise AssertionError(f"did not pause: {line!r} {process.stderr.read()}")
    return process


def _interruptible() -> None:
    """In the child: SIGINT as a terminal gives it. A suite started in the background by a shell without job control
    (``cmd &`` in a script) inherits SIGINT ignored, and a process that starts with it ignored rightly keeps it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def resume(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate("\n", timeout=timeout)
    return process.returncode, out, err


def assert_one_line_error(done: subprocess.CompletedProcess | tuple, *, contains: str = "") -> str:
    """Non-zero exit, stderr one line starting ``prefdata: error:``, no traceback; returns that line."""
    code, err = (done.returncode, done.stderr) if isinstance(done, subprocess.CompletedProcess) else (done[0], done[2])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None) and 0 < code < 128, (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("prefdata: error:")]
    assert len(errors) == 1, err
    assert contains in errors[0], errors[0]
    return errors[0]


def leftovers(folder: Path, name: str) -> list[str]:
    """Hidden siblings of output ``name`` in ``folder``: temporary or old copies and lock files."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def write_jsonl(path: Path, count: int, *, width: int = 20) -> Path:
    """``count`` distinct preference records (prompt/chosen/rejected), each reply about ``width`` words."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            words = " ".join(f"w{i}x{j}" for j in range(width))
            f.write(json.dumps({"prompt": f"Question {i}?", "chosen": f"Yes {words}.", "rejected": f"No {words}."})
                    + "\n")
    return path
