"""`prefdata validate`: check data files against the JSON Schemas in `schemas/` and the row rules, and dataset
directories against §2.

Files are streamed record by record through `prefdata.storage.readers.iter_records` (a 1 GB JSONL or JSON array is never
loaded whole) and each record is checked by one compiled `Draft202012Validator`, then by the row rules
(`prefdata.contract.rules`) through the parser `prefdata import` would use for it, so a record that import would
quarantine is a violation here, with the same reason code. ``--schema auto`` detects the file's format exactly as
``import --format auto`` does (`prefdata.formats.detect_from_records`) and checks the records against that format's
schema and parser; what the good records become is counted by row kind (`ValidationReport.kinds`). Every violation is reported as
``FILE:LINE: /json/pointer: message``; only the first ``max_errors`` are kept and printed, all are counted. The record
schemas describe a whole file as a JSON array (ChatLLaMA's layout) so editors can use them as they are; a record is
checked against the schema's ``$defs/record``. Directory checks live in `prefdata.jobs.validate_dataset`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefdata.contract import nesting
from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import row_kind
from prefdata.contract.rules import field_pointer, number_from_text
from prefdata.formats import FORMATS, detect_from_records, detection_head, most_specific
from prefdata.formats.common import Format, maybe_json
from prefdata.jobs.validate_dataset import validate_directory
from prefdata.jobs.validate_report import DEFAULT_MAX_ERRORS, Echo, ValidationReport, Violation
from prefdata.jobs.validate_schema import (
    DOCUMENT_SCHEMAS,
    RECORD_SCHEMAS,
    SCHEMA_NAMES,
    check_value,
    compiled_validator,
    load_schema,
    record_required,
    record_validator,
)
from prefdata.storage.readers import BadRecord, check_input_file, container_of, iter_records

TEMPLATES_FILE_NAME = "templates.json"
# The import formats each bundled record schema describes (`Format.schema`), for ``--schema NAME``: the first that
# accepts a record parses it, the last when none does.
RULE_FORMATS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in FORMATS.values() if f.schema == name) for name in RECORD_SCHEMAS
}


# -------------------------------------------------------------------------------------------------------- files


def is_templates_file(path: str | os.PathLike) -> bool:
    """A file named templates.json is checked as ChatLLaMA templates, whatever ``--schema auto`` would guess."""
    return Path(path).name.lower() == TEMPLATES_FILE_NAME


def validate_document(path: str | os.PathLike, report: ValidationReport, out: Echo | None = print,
                      schema: str = "templates") -> None:
    """A templates.json or a prefdata.json is one JSON object, not a stream of records: parse it whole (it is small)."""
    p = check_input_file(path)
    try:
        value = nesting.loads(p.read_bytes().decode("utf-8-sig"), nesting.DOCUMENT_DEPTH)
    except UnicodeDecodeError as e:
        raise PrefdataError(f"invalid UTF-8 at byte {e.start}", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise PrefdataError(f"invalid JSON: {e.msg}", file=str(path), line=e.lineno) from None
    except nesting.TooDeepError as e:
        raise PrefdataError(str(e), file=str(path)) from None
    report.files += 1
    report.records += 1
    report.schemas[str(path)] = schema
    problems = check_value(compiled_validator(schema), value)
    for pointer, message in problems:
        report.add(Violation(str(path), pointer, message), out)
    if problems:
        report.bad_records += 1
        report.bad_files += 1


def _number_keys(name: str) -> frozenset[str]:
    return frozenset(k for k, t in record_required(name)[1].items() if t in ("number", "integer"))


def _from_csv(value: dict[str, Any], number_keys: frozenset[str]) -> dict[str, Any]:
    """CSV has only text: a cell where the schema wants a number is read as one when it spells one (as import does)."""
    for key in number_keys & value.keys():
        value[key] = number_from_text(value[key])
    return value


def rule_format(schema: str, record: Mapping[str, Any]) -> Format | None:
    """The import format whose parser applies the row rules to a record of ``schema``; None for a schema file.

    Among the schema's formats, the most specific whose keys the record has (alpaca-preference over alpaca) and
    whose value check it passes; else the last of them, whose parser names what is missing."""
    names = RULE_FORMATS.get(schema)
    if not names:
        return None
    present = most_specific([FORMATS[n] for n in names], (k for k, v in record.items() if v is not None))
    return next((f for f in present if f.accepts(record)), present[-1] if present else FORMATS[names[-1]])


def parse_for_rules(fmt: Format | None, record: Any) -> tuple[dict[str, Any] | None, RowError | None]:
    """``(row, None)`` when import would make ``record`` a row, ``(None, error)`` when it would quarantine it."""
    if fmt is None or not isinstance(record, dict):
        return None, None
    try:
        return fmt.parse(record, "validate"), None
    except RowError as e:
        return None, e


def rule_error(schema: str, record: Any) -> RowError | None:
    """The `RowError` import would quarantine ``record`` with, or None when it would become a row."""
    fmt = rule_format(schema, record) if isinstance(record, dict) else None
    return parse_for_rules(fmt, record)[1]


def _json_cells(record: dict[str, Any]) -> dict[str, Any]:
    """A CSV record with its JSON-text cells (lists of messages, message objects) decoded, as the parsers decode them."""
    decoded = {}
    for key, value in record.items():
        try:
            decoded[key] = maybe_json(value, key)
        except RowError:  # nested too deep: the parser quarantines it, the schema sees the text
            decoded[key] = value
    return decoded


def schema_problems(validator, record: Any, csv: bool) -> list[tuple[str, str]]:
    """The schema's problems with ``record``; in CSV, where a list of messages can only be JSON text, the record with
    its JSON cells decoded is checked too and its problems count instead (none when either reading is valid)."""
    problems = check_value(validator, record)
    if problems and csv and isinstance(record, dict):
        problems = check_value(validator, _json_cells(record))
    return problems


def record_violations(where: str, record: Any, validator, fmt: Format | None, report: ValidationReport,
                      out: Echo | None, csv: bool = False) -> tuple[bool, dict[str, Any] | None]:
    """Report one record's schema problems and row-rule error (from ``fmt``'s parser); ``(has any, the row import
    would make of it)``.

    A rule error at a field the schema already reported (or one the record has no key for, as a row field named by
    `make_row`) adds its reason code to the schema's line rather than a second line for the same defect.
    """
    problems = schema_problems(validator, record, csv)
    row, error = parse_for_rules(fmt, record)
    pointer = field_pointer(error.field) if error is not None else None
    if pointer is not None and pointer.split("/")[1] not in record:
        pointer = None
    pointers = [p for p, _ in problems]
    merged = pointers.index(pointer) if pointer in pointers else 0
    for number, (problem_pointer, message) in enumerate(problems):
        reason = error.reason if error is not None and number == merged else None
        report.add(Violation(where, problem_pointer, message), out, reason)
    if error is not None and not problems:
        report.add(Violation(where, pointer, error.message, error.reason), out)
    return bool(problems) or error is not None, row


def validate_file(path: str | os.PathLike, report: ValidationReport, *, schema: str = "auto", out: Echo | None = print,
                  note: Echo | None = None, quiet: bool = True) -> None:
    """Stream one data file's records through the schema, adding what is wrong to ``report``."""
    from prefdata.pipeline.progress import progress

    file = str(path)
    if schema == "templates" or (schema == "auto" and is_templates_file(path)):
        validate_document(path, report, out)
        return
    if schema == "auto" and Path(path).name == "prefdata.json":
        schema = "manifest"
    if schema in DOCUMENT_SCHEMAS:
        validate_document(path, report, out, schema=schema)
        return
    check_input_file(path)
    records = iter_records(path)
    head: list = []
    detected: Format | None = None
    if schema == "auto":
        head = detection_head(records)
        detected = detect_from_records(head, file, option="--schema")
        assert detected.schema is not None  # every preference format names its schema (tests/test_formats_v2.py)
        schema = detected.schema
        if note is not None:
            keys = sorted(set().union(*(r.value for r in head if not isinstance(r, BadRecord))))
            note(f"{file}: schema {schema} (detected from the keys {', '.join(keys)}); import reads it as format "
                 f"{detected.name}")
    validator = record_validator(schema)
    csv = container_of(path) == "csv"
    numbers = _number_keys(schema) if csv and detected is None else frozenset()
    report.files += 1
    report.schemas[file] = schema
    kinds: Counter[str] = report.kinds.setdefault(file, Counter())
    bad_before = report.bad_records
    for record in progress(_chain(head, records), desc=f"validate {Path(file).name}", quiet=quiet):
        report.records += 1
        where = f"{file}:{record.line}" if record.line is not None else f"{file}[{record.index}]"
        if isinstance(record, BadRecord):
            report.bad_records += 1
            report.add(Violation(where, record.reason, record.message), out)
            continue
        value = record.value
        if detected is not None and csv:
            value = detected.cells_from_text(value)
        elif numbers:
            value = _from_csv(value, numbers)
        fmt = detected or (rule_format(schema, value) if isinstance(value, dict) else None)
        bad, row = record_violations(where, value, validator, fmt, report, out, csv)
        report.bad_records += bad
        if row is not None:
            kinds[row_kind(row)] += 1
    if report.bad_records > bad_before:
        report.bad_files += 1
    if kinds and note is not None:
        counted = ", ".join(f"{count:,} {kind}" for kind, count in sorted(kinds.items()))
        total = sum(kinds.values())
        note(f"{file}: import makes {total:,} {'row' if total == 1 else 'rows'} of it: {counted}")


def _chain(head: list, rest: Iterable) -> Iterable:
    yield from head
    yield from rest


def validate_files(paths: Sequence[str | os.PathLike], schema: str = "auto", max_errors: int = DEFAULT_MAX_ERRORS,
                   out: Echo | None = print, note: Echo | None = None, quiet: bool = True,
                   report: ValidationReport | None = None) -> ValidationReport:
    """Validate data files (JSONL, JSON array, CSV, Parquet; gzip or not) or templates.json files.

    Prints each kept violation through ``out`` as it is found and returns the report (``report`` to add to one);
    file-level defects (missing, LFS pointer, corrupt gzip, truncated JSON) raise `PrefdataError`. Every path is
    checked before any is read, so a typo in the last path does not cost a long run.
    """
    if schema != "auto":
        load_schema(schema)
    for path in paths:
        check_input_file(path)
    report = report if report is not None else ValidationReport(max_errors=max_errors)
    for path in paths:
        validate_file(path, report, schema=schema, out=out, note=note, quiet=quiet)
    return report


def validate_paths(paths: Sequence[str | os.PathLike], schema: str = "auto", max_errors: int = DEFAULT_MAX_ERRORS,
                   out: Echo | None = print, note: Echo | None = None, quiet: bool = False) -> ValidationReport:
    """What the CLI runs: dataset directories are checked as directories, everything else as data files."""
    if not paths:
        raise PrefdataError("nothing to validate: give one or more files or dataset directories")
    report = ValidationReport(max_errors=max_errors)
    validate_files([p for p in paths if not Path(p).is_dir()], schema, out=out, note=note, quiet=quiet, report=report)
    for path in paths:
        if Path(path).is_dir():
            validate_directory(path, out=out, quiet=quiet, report=report)
    return report


__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DOCUMENT_SCHEMAS",
    "RECORD_SCHEMAS",
    "SCHEMA_NAMES",
    "ValidationReport",
    "Violation",
    "parse_for_rules",
    "compiled_validator",
    "load_schema",
    "rule_error",
    "validate_directory",
    "validate_file",
    "validate_files",
    "validate_paths",
]
