"""`prefdata validate DIR`: check a dataset directory (design §2) without trusting anything in it.

The manifest is checked against ``schemas/manifest.schema.json``; then every shard's size, sha256 and Arrow schema
against the manifest; the row counts per shard and split; the manifest's counts against each other and against
``quarantine.jsonl``; and every row against the contract of §1 (its `id` is the hash of its content, so an edited row
is caught). Rows are streamed one Arrow record batch at a time from memory-mapped shards: memory stays flat.
A directory is checked against the row schema its manifest names (a /1 directory against /1: shards of its columns,
rows under the rules, which /1 rows meet as /2 rows do), and the report says which (`ValidationReport.versions`).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prefdata.contract import nesting
from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import SCHEMAS, UNSUP_SCHEMA_ID, stored_row_id, unsup_id
from prefdata.contract.rules import field_pointer, stored_row_errors
from prefdata.jobs.validate_report import DEFAULT_MAX_ERRORS, DIRECTORY, Echo, ValidationReport, Violation
from prefdata.jobs.validate_schema import check_value, compiled_validator
from prefdata.storage.dataset import MANIFEST, QUARANTINE, file_sha256
from prefdata.storage.rows import python_rows


class _Checker:
    """Collects the problems of one directory into the report, tallying rows that have at least one."""

    def __init__(self, directory: Path, report: ValidationReport, out: Echo | None) -> None:
        self.directory = directory
        self.report = report
        self.out = out
        self.found = 0

    def problem(self, message: str, where: str | None = None, pointer: str | None = None,
                reason: str | None = None) -> None:
        self.found += 1
        self.report.add(Violation(f"{self.directory}/{where}" if where else str(self.directory), pointer, message,
                                  reason), self.out)


def validate_directory(path: str | os.PathLike, max_errors: int = DEFAULT_MAX_ERRORS, out: Echo | None = print,
                       quiet: bool = True, report: ValidationReport | None = None) -> ValidationReport:
    """Check one prefdata dataset directory; problems are printed through ``out`` and returned in the report.

    A path that is missing or not a directory raises `PrefdataError`; everything wrong inside the directory is a
    violation (``DIR: message``, ``DIR/split/FILE: message`` or ``DIR/split:ROW: /field: message``).
    """
    directory = Path(path)
    if not directory.exists():
        raise PrefdataError("no such directory", file=str(path))
    if not directory.is_dir():
        raise PrefdataError("is a file, not a dataset directory", file=str(path))
    report = report if report is not None else ValidationReport(max_errors=max_errors)
    report.directories += 1
    report.schemas[str(path)] = DIRECTORY
    check = _Checker(directory, report, out)
    manifest = _check_manifest(check)
    if manifest is not None:
        report.versions[str(path)] = manifest["schema"]
        split_rows = {name: _check_split(check, name, info, manifest["schema"], quiet)
                      for name, info in manifest["splits"].items()}
        _check_counts(check, manifest, split_rows)
    if check.found:
        report.bad_files += 1
    return report


def _check_manifest(check: _Checker) -> dict[str, Any] | None:
    """The manifest, when it is there, parses and has what the other checks need; otherwise None (and a problem)."""
    path = check.directory / MANIFEST
    if not path.is_file():
        check.problem(f"not a prefdata dataset directory: {MANIFEST} is missing")
        return None
    try:
        manifest = nesting.loads(path.read_text(encoding="utf-8"), nesting.DOCUMENT_DEPTH)
    except (ValueError, UnicodeDecodeError) as e:
        check.problem(f"unreadable: {e}", MANIFEST)
        return None
    problems = check_value(compiled_validator("manifest"), manifest)
    for pointer, message in problems:
        check.problem(message, MANIFEST, pointer)
    if problems:
        return None
    if manifest["schema"] not in SCHEMAS:
        check.problem(f"unknown row schema {manifest['schema']!r} (known: {', '.join(SCHEMAS)})", MANIFEST, "/schema")
        return None
    listed = _read_json(check, "dataset_dict.json")
    if listed is not None:
        splits = listed.get("splits") if isinstance(listed, dict) else None
        if not isinstance(splits, list) or sorted(map(str, splits)) != sorted(manifest["splits"]):
            check.problem(f"lists the splits {splits}, the manifest {sorted(manifest['splits'])}", "dataset_dict.json")
    return manifest


def _read_json(check: _Checker, relative: str) -> Any:
    path = check.directory / relative
    if not path.is_file():
        check.problem("is missing", relative)
        return None
    try:
        return nesting.loads(path.read_text(encoding="utf-8"), nesting.DOCUMENT_DEPTH)
    except (ValueError, UnicodeDecodeError) as e:
        check.problem(f"unreadable: {e}", relative)
        return None


def _check_split(check: _Checker, name: str, info: Mapping[str, Any], schema_id: str, quiet: bool) -> int:
    """Shards of one split against the manifest, then their rows against the contract; returns the rows read."""
    folder = check.directory / name
    if not folder.is_dir():
        check.problem("the split's folder is missing", name)
        return 0
    shards = info["shards"]
    listed = [s["file"] for s in shards]
    state = _read_json(check, f"{name}/state.json")
    if isinstance(state, dict):
        files = [f.get("filename") for f in state.get("_data_files", []) if isinstance(f, dict)]
        if files != listed:
            check.problem(f"lists the shards {files}, the manifest {listed}", f"{name}/state.json")
    for extra in sorted({p.name for p in folder.glob("data-*.arrow")} - set(listed)):
        check.problem("is not in the manifest", f"{name}/{extra}")
    fingerprint = hashlib.sha256("".join(s["sha256"] for s in shards).encode()).hexdigest()[:16]
    if fingerprint != info["fingerprint"]:
        check.problem(f"fingerprint {info['fingerprint']} does not match its shards' checksums ({fingerprint})",
                      MANIFEST, f"/splits/{name}/fingerprint")
    if sum(s["rows"] for s in shards) != info["rows"]:
        check.problem(f"{info['rows']:,} rows, but its shards list {sum(s['rows'] for s in shards):,}", MANIFEST,
                      f"/splits/{name}/rows")
    start = 0
    for shard in shards:
        start += _check_shard(check, name, shard, schema_id, start, quiet)
    if start != info["rows"]:
        check.problem(f"has {start:,} rows, the manifest says {info['rows']:,}", name)
    check.report.records += start
    check.report.rows += start
    return start


def _check_shard(check: _Checker, split: str, shard: Mapping[str, Any], schema_id: str, start: int,
                 quiet: bool) -> int:
    """One shard: size, checksum, Arrow schema, rows. Returns the number of rows read from it."""
    import pyarrow as pa

    where = f"{split}/{shard['file']}"
    path = check.directory / split / shard["file"]
    if not path.is_file():
        check.problem("is missing", where)
        return 0
    size = path.stat().st_size
    if size != shard["bytes"]:
        check.problem(f"is {size:,} bytes, the manifest says {shard['bytes']:,}", where)
    digest = file_sha256(path)
    if digest != shard["sha256"]:
        check.problem(f"sha256 {digest[:16]}… does not match the manifest's {shard['sha256'][:16]}… "
                      "(the file was changed after it was written)", where)
    rows = 0
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            expected = SCHEMAS[schema_id]
            differences = schema_differences(reader.schema, expected)
            if differences:
                check.problem(f"Arrow schema is not {schema_id}: {'; '.join(differences)}", where)
                rows = _count_rows(reader)
            else:
                for row in _stream_rows(reader, f"validate {split}", quiet):
                    problems = row_problems(row, schema_id)
                    check.report.bad_records += bool(problems)
                    for error in problems:
                        check.problem(error.message, f"{split}:{start + rows}", field_pointer(error.field),
                                      error.reason)
                    rows += 1
    except (pa.ArrowException, OSError) as e:
        check.problem(f"unreadable Arrow data after row {rows:,}: {e}", where)
    if rows != shard["rows"]:
        check.problem(f"has {rows:,} rows, the manifest says {shard['rows']:,}", where)
    return rows


def _count_rows(reader) -> int:
    return sum(batch.num_rows for batch in reader)


def _stream_rows(reader, desc: str, quiet: bool) -> Iterator[dict[str, Any]]:
    """Rows of an IPC stream one record batch at a time, each batch fully validated before Python reads it."""
    from prefdata.pipeline.progress import progress

    def rows() -> Iterator[dict[str, Any]]:
        for batch in reader:
            batch.validate(full=True)  # corrupt offsets or UTF-8 raise here instead of being read
            yield from python_rows(batch)

    return iter(progress(rows(), desc=desc, quiet=quiet, unit="row"))


def schema_differences(actual, expected) -> list[str]:
    """What differs between two Arrow schemas, by field name and type (metadata and nullability are ignored)."""
    have = {f.name: f.type for f in actual}
    want = {f.name: f.type for f in expected}
    found = [f"missing column {n}" for n in want if n not in have]
    found += [f"unexpected column {n}" for n in have if n not in want]
    found += [f"column {n} is {have[n]}, expected {want[n]}" for n in want if n in have and have[n] != want[n]]
    if not found and list(have) != list(want):
        found.append(f"columns in the order {', '.join(have)}, expected {', '.join(want)}")
    return found


def row_problems(row: Mapping[str, Any], schema_id: str) -> list[RowError]:
    """The row rules (`prefdata.contract.rules`) on one stored row, its id included: every rule it breaks."""
    return stored_row_errors(row, unsup=schema_id == UNSUP_SCHEMA_ID, content_id=_content_id)


def _content_id(row: Mapping[str, Any]) -> str:
    """The id a stored row's content hashes to (what `make_row` or `make_unsup_row` gave it)."""
    if "text" in row:
        return unsup_id(row["text"])
    return stored_row_id(row)


def _check_counts(check: _Checker, manifest: Mapping[str, Any], split_rows: Mapping[str, int]) -> None:
    """The manifest's counts against each other, against the splits, and against quarantine.jsonl."""
    counts = manifest["counts"]
    listed = sum(info["rows"] for info in manifest["splits"].values())
    if counts["rows_out"] != listed:
        check.problem(f"{counts['rows_out']:,}, but the splits hold {listed:,} rows", MANIFEST, "/counts/rows_out")
    out_key = "records_out" if "records_out" in counts else "rows_out"
    if counts["records_in"] != counts[out_key] + counts["quarantined"]:
        check.problem(f"{counts['records_in']:,} records in, but {out_key} {counts[out_key]:,} + quarantined "
                      f"{counts['quarantined']:,} = {counts[out_key] + counts['quarantined']:,}", MANIFEST,
                      "/counts/records_in")
    by_reason = counts["quarantined_by_reason"]
    if sum(by_reason.values()) != counts["quarantined"]:
        check.problem(f"{counts['quarantined']:,}, but the counts by reason add up to {sum(by_reason.values()):,}",
                      MANIFEST, "/counts/quarantined")
    found = _quarantine_reasons(check)
    if found is None:
        return
    lines, reasons = found
    if lines != counts["quarantined"]:
        check.problem(f"has {lines:,} records, the manifest says quarantined {counts['quarantined']:,}", QUARANTINE)
    for reason in sorted(set(reasons) | set(by_reason)):
        if reasons.get(reason, 0) != by_reason.get(reason, 0):
            check.problem(f"has {reasons.get(reason, 0):,} records with reason {reason!r}, the manifest says "
                          f"{by_reason.get(reason, 0):,}", QUARANTINE)


def _quarantine_reasons(check: _Checker) -> tuple[int, Counter[str]] | None:
    """Lines of quarantine.jsonl and their reason codes, read line by line (it can be as large as the input)."""
    path = check.directory / QUARANTINE
    if not path.is_file():
        check.problem("is missing", QUARANTINE)
        return None
    reasons: Counter[str] = Counter()
    lines = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            lines += 1
            try:
                entry = nesting.loads(raw, nesting.DOCUMENT_DEPTH)
            except ValueError as e:
                check.problem(f"invalid JSON: {e}", f"{QUARANTINE}:{number}")
                continue
            reason = entry.get("reason") if isinstance(entry, dict) else None
            if not isinstance(reason, str) or not reason:
                check.problem("has no reason code", f"{QUARANTINE}:{number}", "/reason")
                continue
            reasons[reason] += 1
    return lines, reasons
