"""Putting a finished output in place: never clobber what prefdata did not write, never leave half an output behind.

Every command that writes a directory (`import`, `download`, `split`, `export`, …) builds it in a temporary sibling,
then `publish_dir` renames it into place, so a crash or Ctrl-C leaves either the old output or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError

MANIFEST = "prefdata.json"


def check_output_dir(out: Path, overwrite: bool, *, marker: str = MANIFEST, what: str = "dataset") -> None:
    """Refuse to clobber: an existing output needs ``--overwrite``, and only a directory holding ``marker`` (one that
    prefdata wrote) is ever replaced."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PrefdataError("exists and is not a directory", file=str(out))
    if not overwrite:
        raise PrefdataError("exists; pass --overwrite to replace it", file=str(out))
    if any(out.iterdir()) and not (out / marker).exists():
        raise PrefdataError(f"is not a prefdata {what} directory; refusing to overwrite it", file=str(out))


def publish_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary sibling into place, replacing an older ``out`` (already checked by the caller)."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON through a temporary sibling and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


LOCK_SUFFIX = ".lock"


def lock_path(out: Path) -> Path:
    """The lock file of an output: a hidden sibling, so it survives the output being replaced."""
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, *, what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on ``out`` while it is written: one writer per output.

    A second writer fails at once with one line naming the holder's PID (written into the lock file), instead of
    silently replacing the first one's data. The lock is an OS file lock (`filelock`), so it is released when its
    holder dies, whatever the signal.
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        lock.acquire()
    except Timeout:
        holder = _lock_holder(path)
        raise PrefdataError(f"another prefdata process{holder} is writing this {what}; wait for it or choose another "
                            "--out", file=str(out)) from None
    except OSError as e:
        raise PrefdataError(f"cannot lock the {what}: {e.strerror or e}", file=str(out)) from None
    try:
        with contextlib.suppress(OSError):
            path.write_text(str(os.getpid()), encoding="utf-8")
        yield
    finally:
        lock.release()


def _lock_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (PID {pid})" if pid.isdigit() else ""
