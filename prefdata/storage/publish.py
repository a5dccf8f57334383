"""Putting a finished output in place: one writer per output, never clobber what prefdata did not write, never leave
half an output or a temporary directory behind.

Every command that writes a directory (`import`, `download`, `split`, `export`, …) holds `output_lock` on it, builds it
in a temporary sibling (`temp_sibling`), then `publish_dir` renames it into place, so a crash or Ctrl-C leaves either
the old output or the new one. Temporary siblings are removed on every exit Python sees (errors, SIGTERM, SIGINT); one
left by a process killed outright is removed by the next writer of the same output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError

MANIFEST = "prefdata.json"
LOCK_SUFFIX = ".lock"
# errno values that say the file system refused a write whatever the file: the user's disk, not a bug.
_FULL_DISK = (errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def check_output_dir(out: Path, overwrite: bool, *, marker: str = MANIFEST, what: str = "dataset") -> None:
    """Refuse to clobber: an existing output needs ``--overwrite``, and only a directory holding ``marker`` (one that
    prefdata wrote) is ever replaced."""
    try:
        if not out.exists():
            return
        if not out.is_dir():
            raise PrefdataError("exists and is not a directory", file=str(out))
        if not overwrite:
            raise PrefdataError("exists; pass --overwrite to replace it", file=str(out))
        if any(out.iterdir()) and not (out / marker).exists():
            raise PrefdataError(f"is not a prefdata {what} directory; refusing to overwrite it", file=str(out))
    except OSError as e:
        raise output_error(e, out, what) from None


def output_error(error: OSError, out: str | os.PathLike, what: str = "output") -> PrefdataError:
    """One line for an OS error met while writing ``out`` (full disk, file too large, bad name, read-only place)."""
    reason = error.strerror or str(error).split("\n")[0] or type(error).__name__
    return PrefdataError(f"cannot write the {what}: {reason}", file=printable_path(out))


def is_output_error(error: BaseException, *places: Path) -> bool:
    """Whether ``error`` is the file system refusing to write the output: a full disk or too large a file anywhere,
    or any OS error on a path under one of ``places`` (pyarrow's OSErrors carry no errno, only the text)."""
    if not isinstance(error, OSError):
        return False
    if error.errno in _FULL_DISK or any(os.strerror(code) in str(error) for code in _FULL_DISK):
        return True
    names = [os.fsdecode(f) for f in (error.filename, error.filename2) if f is not None]
    return any(name == str(place) or name.startswith(f"{place}{os.sep}") for name in names for place in places)


def printable_path(path: str | os.PathLike) -> str:
    """A path as one printable line: undecodable bytes as escapes (a non-UTF-8 name must not break the message)."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


def publish_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary sibling into place, replacing an older ``out`` (already checked by the caller).

    Any failure leaves the old ``out`` where it was and removes ``tmp``."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        if out.exists():
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON through a temporary sibling and a rename, so a reader never sees half a file.

    Text that is not valid Unicode (a non-UTF-8 file name, as Python's surrogate escapes) makes the whole file ASCII
    with JSON escapes, so it still parses and reads back as the same value."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = (json.dumps(value, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def temp_sibling(out: Path, *, what: str = "output") -> Iterator[Path]:
    """A fresh hidden ``.OUT.tmp-PID`` directory beside ``out``, removed if the block fails (publish it with
    `publish_dir` inside the block). Stale siblings of dead processes are cleared first. Call under `output_lock`."""
    remove_stale_siblings(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        raise output_error(e, out, what) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_SIBLING = re.compile(r"\.(?P<kind>tmp|old)-(?P<pid>[0-9]+)$")


def remove_stale_siblings(out: Path) -> list[Path]:
    """Remove the ``.OUT.tmp-PID`` / ``.OUT.old-PID`` siblings whose process is gone (it was killed outright), saying
    so on stderr; an ``out`` lost between the two renames of `publish_dir` is put back from its ``.old`` copy."""
    removed = []
    prefix = f".{out.name}."
    try:
        siblings = sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return removed
    for path in siblings:
        match = _SIBLING.fullmatch(path.name[len(prefix) - 1:])
        if match is None or _alive(int(match["pid"])):
            continue
        if match["kind"] == "old" and not out.exists():
            os.replace(path, out)
            print(f"prefdata: restored {printable_path(out)} from {printable_path(path.name)}, left by process "
                  f"{match['pid']} that was killed while publishing", file=sys.stderr)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        print(f"prefdata: removed {printable_path(path)}, left behind by process {match['pid']} that no longer runs",
              file=sys.stderr)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier writer in this process: nobody uses it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def lock_path(out: Path) -> Path:
    """The lock file of an output: a hidden sibling, so it survives the output being replaced."""
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, *, what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on ``out`` while it is written: one writer per output.

    A second writer fails at once with one line naming the holder's PID (written into the lock file), instead of
    silently replacing the first one's data. The lock is an OS file lock (`filelock`), so it is released when its
    holder dies, whatever the signal, and its file is removed on release. While it is held, SIGTERM unwinds like Ctrl-C does, so temporary siblings are
    removed (`terminate_unwinds`).
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
                            "--out", file=printable_path(out)) from None
    except OSError as e:
        raise output_error(e, out, what) from None
    try:
        with contextlib.suppress(OSError):
            path.write_text(str(os.getpid()), encoding="utf-8")
        with terminate_unwinds():
            yield
    finally:
        # Unlinked while still held, so no lock file outlives the run; filelock (4.x) sees that a waiter's inode was
        # unlinked (st_nlink 0) and takes a fresh file.
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()


class Terminated(SystemExit):
    """SIGTERM, raised where the process was so that ``finally`` blocks and context managers clean up."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` (exit 143) for the duration of the block, in the main thread of this process
    only (a forked worker gets the default action back, so it never runs its parent's cleanup)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    owner = os.getpid()

    def on_term(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        print("prefdata: terminated; removing temporary files", file=sys.stderr)
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_term:  # a handler installed meanwhile (a trainer's) stays
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _lock_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (PID {pid})" if pid.isdigit() else ""
