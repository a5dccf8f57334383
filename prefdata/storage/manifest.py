"""The manifest as the root of trust: parse it, check that its numbers hang together, and find every shard it lists
with its size and sha256 (issue #10). Readers (`storage.dataset.load`, the trainers) call `verify_directory` before
they use a directory, so a damaged one is refused with one line instead of being read as if it were sound.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import SCHEMAS
from prefdata.storage.publish import MANIFEST


def file_sha256(path: Path) -> str:
    """sha256 of a file read in 1 MiB blocks (memory stays flat for a shard of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed manifest of ``directory`` (not yet checked against the shards: see `verify_directory`)."""
    path = Path(directory)
    try:
        if not path.exists():
            raise PrefdataError("no such directory", file=str(path))
        if not path.is_dir():
            raise PrefdataError("is a file, not a dataset directory", file=str(path))
        manifest = path / MANIFEST
        if not manifest.exists():
            raise PrefdataError(f"not a prefdata dataset directory (no {MANIFEST})", file=str(path))
        value = json.loads(manifest.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise PrefdataError(f"unreadable manifest: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                            file=str(path / MANIFEST)) from None
    except OSError as e:
        raise PrefdataError(f"cannot read: {e.strerror or e}", file=str(path)) from None
    if not isinstance(value, dict):
        raise PrefdataError("the manifest is not a JSON object", file=str(path / MANIFEST))
    return value


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_structure(manifest: Mapping[str, Any], where: str) -> None:
    """What readers rely on, each with its type: schema, splits with safe folder names, shards, counts that
    reconcile (rows, records in = out + quarantined, reasons), fingerprints. A hand-edited number is caught here."""
    def bad(message: str, field: str) -> PrefdataError:
        return PrefdataError(message, file=where, field=field)

    if manifest.get("schema") not in SCHEMAS:
        raise bad(f"unknown row schema {manifest.get('schema')!r}", "schema")
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise bad("manifest has no splits", "splits")
    for name, split in splits.items():
        if not name or name in (".", "..") or "/" in name or "\0" in name or not isinstance(split, dict):
            raise bad(f"not a valid split: {name!r}", "splits")
        shards = split.get("shards")
        if not isinstance(shards, list) or not shards or not all(isinstance(s, dict) for s in shards):
            raise bad("manifest lists no shards", f"splits.{name}")
        for number, shard in enumerate(shards):
            if not (_SHARD_NAME.fullmatch(str(shard.get("file"))) and _count(shard.get("rows"))
                    and _count(shard.get("bytes")) and _SHA256.fullmatch(str(shard.get("sha256")))):
                raise bad("shard entry needs file, rows, bytes and sha256", f"splits.{name}.shards[{number}]")
        if not _count(split.get("rows")) or sum(s["rows"] for s in shards) != split["rows"]:
            raise bad("shard rows do not add up to the split's rows", f"splits.{name}")
        fingerprint = hashlib.sha256("".join(s["sha256"] for s in shards).encode()).hexdigest()[:16]
        if split.get("fingerprint") != fingerprint:
            raise bad("fingerprint does not match the shards' checksums", f"splits.{name}.fingerprint")
    counts = manifest.get("counts")
    by_reason = counts.get("quarantined_by_reason") if isinstance(counts, dict) else None
    names = ("records_in", "rows_out", "quarantined") + (("records_out",) if "records_out" in (counts or {}) else ())
    if not isinstance(by_reason, dict) or not all(_count(counts.get(n)) for n in names) or not all(
            _count(v) for v in by_reason.values()):
        raise bad("needs records_in, rows_out, quarantined and quarantined_by_reason as counts", "counts")
    if counts["rows_out"] != sum(split["rows"] for split in splits.values()):
        raise bad(f"{counts['rows_out']} rows out, but the splits hold {sum(s['rows'] for s in splits.values())}",
                  "counts.rows_out")
    out = counts.get("records_out", counts["rows_out"])
    if counts["records_in"] != out + counts["quarantined"] or sum(by_reason.values()) != counts["quarantined"]:
        raise bad("records in, out, quarantined and quarantined by reason do not reconcile", "counts")


DIGEST = "manifest_sha256"


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 over the manifest's own content (every field but this one, keys sorted, ASCII JSON): the shards' checksums
    protect the data, this protects what the manifest says about it (command, options, counts, warnings)."""
    body = {key: value for key, value in manifest.items() if key != DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_digest(manifest: Mapping[str, Any], where: str) -> None:
    """Refuse a manifest whose content differs from its recorded digest; manifests written before 0.2.0 have none."""
    if DIGEST not in manifest:
        return
    try:
        same = manifest[DIGEST] == manifest_digest(manifest)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise PrefdataError("the manifest's content differs from its checksum: it was edited or damaged", file=where,
                            field=DIGEST)


_SHARD_NAME = re.compile(r"data-[0-9]{5}-of-[0-9]{5}\.arrow")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def verify_directory(directory: str | os.PathLike, *, checksums: bool = True, digest: bool = True) -> dict[str, Any]:
    """The manifest of ``directory`` once its shards are what the manifest says: every shard present with its size
    (and, with ``checksums``, its sha256), and the counts reconciling. Raises a one-line `PrefdataError` naming the
    first damaged shard or manifest field; nothing on disk is trusted before this passes."""
    path = Path(directory)
    manifest = read_manifest(path)
    _check_structure(manifest, str(path / MANIFEST))
    for name, split in manifest["splits"].items():
        for shard in split["shards"]:
            shard_path = path / name / shard["file"]
            try:
                size = shard_path.stat().st_size
                if size != shard["bytes"]:
                    raise PrefdataError(f"shard is {size} bytes, the manifest says {shard['bytes']}: damaged",
                                        file=str(shard_path))
                if checksums and file_sha256(shard_path) != shard["sha256"]:
                    raise PrefdataError("shard checksum differs from the manifest: damaged", file=str(shard_path))
            except OSError as e:
                missing = e.errno == errno.ENOENT
                raise PrefdataError("shard is missing" if missing else f"cannot read the shard: {e.strerror or e}",
                                    file=str(shard_path)) from None
    if digest:  # last: the checks above name the damaged shard or count precisely
        check_digest(manifest, str(path / MANIFEST))
    return manifest
