"""Putting a finished output in place: never clobber what prefdata did not write, never leave half an output behind.

Every command that writes a directory (`import`, `download`, `split`, `export`, …) builds it in a temporary sibling,
then `publish_dir` renames it into place, so a crash or Ctrl-C leaves either the old output or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
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
