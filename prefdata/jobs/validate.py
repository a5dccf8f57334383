"""`prefdata validate`: check data files against the JSON Schemas in `schemas/`, and dataset directories against §2.

Files are streamed record by record through `prefdata.storage.readers.iter_records` (a 1 GB JSONL or JSON array is never
loaded whole) and each record is checked by one compiled `Draft202012Validator`. Every violation is reported as
``FILE:LINE: /json/pointer: message``; only the first ``max_errors`` are kept and printed, all are counted. The record
schemas describe a whole file as a JSON array (ChatLLaMA's layout) so editors can use them as they are; a record is
checked against the schema's ``$defs/record``. Directory checks live in `prefdata.jobs.validate_dataset`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.resources import schema_path
from prefdata.storage.readers import BadRecord, check_input_file, container_of, iter_records

RECORD_SCHEMAS = ("actor", "reward", "rlhf", "preference", "preference_conversational", "preference_implicit")
DOCUMENT_SCHEMAS = ("templates", "manifest")
SCHEMA_NAMES = RECORD_SCHEMAS + DOCUMENT_SCHEMAS
TEMPLATES_FILE_NAME = "templates.json"
DEFAULT_MAX_ERRORS = 20
DIRECTORY = "dataset directory"  # what `ValidationReport.schemas` says for a directory
_AUTO_SAMPLE = 100  # parseable records whose keys decide `--schema auto`
_AUTO_LOOKAHEAD = 1000  # records read at most to find them
_PREVIEW = 60
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
               int: "a number", float: "a number"}
_SCHEMA_TYPES = {"object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
                 "null": "null", "number": "a number", "integer": "a number"}

Echo = Callable[[str], Any]


@dataclass(frozen=True)
class Violation:
    """One problem: where (``FILE:LINE``, ``DIR/split:ROW`` or ``DIR``), a JSON pointer or field, and a message."""

    where: str
    pointer: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.pointer}: {self.message}" if self.pointer else f"{self.where}: {self.message}"


@dataclass
class ValidationReport:
    """Counts of everything checked; `violations` holds the first ``max_errors`` problems (all when it is 0)."""

    max_errors: int = DEFAULT_MAX_ERRORS
    violations: list[Violation] = field(default_factory=list)
    violation_count: int = 0
    records: int = 0  # data-file records and dataset rows checked
    bad_records: int = 0  # ... that have at least one violation
    files: int = 0
    directories: int = 0
    bad_files: int = 0  # data files and directories with at least one violation
    rows: int = 0  # of which dataset rows
    schemas: dict[str, str] = field(default_factory=dict)  # path -> schema used

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def add(self, violation: Violation, out: Echo | None) -> None:
        self.violation_count += 1
        if self.max_errors == 0 or len(self.violations) < self.max_errors:
            self.violations.append(violation)
            if out is not None:
                out(str(violation))

    def summary(self) -> str:
        """The total line: ``N violations in M records (K files)``, or a one-line OK."""
        checked = []
        if self.files:
            checked.append(f"{_n(self.records - self.rows, 'record')} in {_n(self.files, 'file')}")
        if self.directories:
            checked.append(f"{_n(self.rows, 'row')} in {_n(self.directories, 'dataset directory', 'directories')}")
        done = " and ".join(checked) or "nothing"
        if self.ok:
            schemas = sorted({s for s in self.schemas.values() if s != DIRECTORY})
            return f"OK: {done} valid" + (f" (schema {', '.join(schemas)})" if schemas else "")
        records = f" in {_n(self.bad_records, 'record')}" if self.bad_records else ""
        line = f"{_n(self.violation_count, 'violation')}{records} ({_n(self.bad_files, 'file')}); {done} checked"
        if self.max_errors and self.violation_count > len(self.violations):
            line += f"; the first {len(self.violations)} shown (--max-errors to see more)"
        return line


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


# ---------------------------------------------------------------------------------------------------------- schemas


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A bundled schema by name, or a schema file given by its path (``--schema my.schema.json``); read once."""
    if name in SCHEMA_NAMES:
        path = schema_path(name)
    elif name.endswith(".json") and Path(name).is_file():
        path = Path(name)
    else:
        raise PrefdataError(f"unknown schema {name!r}; choose auto, {', '.join(SCHEMA_NAMES)} or a .json schema file",
                            field="--schema")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PrefdataError(f"unreadable schema: {e}", file=str(path)) from None


@cache
def compiled_validator(name: str, part: str | None = None):
    """A `Draft202012Validator` compiled once, for the whole schema or for one of its ``$defs`` (``part``).

    Local ``#/$defs/...`` references are inlined first: resolving them per record costs more than the checks.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing import Registry, Resource

    schema = load_schema(name)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise PrefdataError(f"not a valid JSON Schema: {e.message}", file=name) from None
    if part is not None and part not in schema.get("$defs", {}):
        raise PrefdataError(f"the schema has no $defs/{part}", file=name)
    target = schema if part is None else schema["$defs"][part]
    inlined = inline_local_refs(target, schema.get("$defs", {}))
    if inlined is not None:
        return Draft202012Validator(inlined)
    # Recursive or remote references: let `referencing` resolve them, through the schema's $id.
    base = schema.get("$id") or f"urn:prefdata:schema-file:{name}"
    registry = Registry().with_resource(base, Resource.from_contents({**schema, "$id": base}))
    return Draft202012Validator({"$ref": base if part is None else f"{base}#/$defs/{part}"}, registry=registry)


def inline_local_refs(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/x"}`` replaced by ``x`` itself; None if a reference is not local or
    is recursive (such a schema is compiled with its references)."""
    if isinstance(node, list):
        items = [inline_local_refs(item, defs, seen) for item in node]
        return None if any(i is None and o is not None for i, o in zip(items, node)) else items
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":
            continue
        if key == "$ref":
            ref = value.removeprefix("#/$defs/") if isinstance(value, str) else None
            if ref is None or ref == value or "/" in ref or ref not in defs or ref in seen:
                return None
            target = inline_local_refs(defs[ref], defs, (*seen, ref))
            if target is None:
                return None
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            clash = set(target) & set(siblings) - {"description", "title"}
            merged = inline_local_refs(siblings, defs, seen)
            if merged is None:
                return None
            return {"allOf": [target], **merged} if clash else {**target, **merged}
        inner = inline_local_refs(value, defs, seen) if isinstance(value, (dict, list)) else value
        if inner is None and value is not None:
            return None
        result[key] = inner
    return result


def record_validator(name: str):
    """Record schemas check one record against ``$defs/record``; a schema without one checks each record whole."""
    schema = load_schema(name)
    return compiled_validator(name, "record" if "record" in schema.get("$defs", {}) else None)


def record_required(name: str) -> tuple[frozenset[str], dict[str, str]]:
    """The keys a record of this schema must have, and the JSON type each property declares (for `--schema auto`)."""
    schema = load_schema(name)
    record = schema.get("$defs", {}).get("record", schema)
    types = {}
    for key, prop in record.get("properties", {}).items():
        target = prop
        if "$ref" in prop:
            target = schema.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], prop)
        if isinstance(target.get("type"), str):
            types[key] = target["type"]
    return frozenset(record.get("required", ())), types


# ------------------------------------------------------------------------------------------------------- messages


def json_pointer(path: Iterable[Any]) -> str:
    """RFC 6901 pointer into the record (``/prompt/0/role``); the record itself is shown as ``/``."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts)


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def describe_error(error) -> tuple[str, str]:
    """(pointer, message) for a jsonschema error, in words a user can act on and without echoing a huge value."""
    path = list(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        key = next((k for k in expected if error.message.startswith(repr(k))), None)
        if key is not None:
            return json_pointer([*path, key]), "required key is missing"
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if wanted[:1] in "aeiou" else "a"
        return json_pointer(path), f"{_preview(value)} is {_json_type(value)}, expected {article} {wanted}"
    if kind == "pattern" and expected == "\\S":
        return json_pointer(path), "is empty or only white space"
    if kind == "enum":
        return json_pointer(path), f"{_preview(value)} is not one of {', '.join(map(_preview, expected))}"
    if kind == "const":
        return json_pointer(path), f"{_preview(value)} must be {_preview(expected)}"
    if kind == "minItems" and expected == 1:
        return json_pointer(path), "is an empty array"
    message = error.message
    if len(message) > 200:
        message = message[:199] + "…"
    return json_pointer(path), message


def check_value(validator, value: Any) -> list[tuple[str, str]]:
    """Every violation of one value, sorted by pointer so the output is stable."""
    return sorted(describe_error(e) for e in validator.iter_errors(value))


# -------------------------------------------------------------------------------------------------------- files


def is_templates_file(path: str | os.PathLike) -> bool:
    return Path(path).name.lower() == TEMPLATES_FILE_NAME


def validate_document(path: str | os.PathLike, report: ValidationReport, out: Echo | None = print,
                      schema: str = "templates") -> None:
    """A templates.json or a prefdata.json is one JSON object, not a stream of records: parse it whole (it is small)."""
    p = check_input_file(path)
    try:
        value = json.loads(p.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise PrefdataError(f"invalid UTF-8 at byte {e.start}", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise PrefdataError(f"invalid JSON: {e.msg}", file=str(path), line=e.lineno) from None
    report.files += 1
    report.records += 1
    report.schemas[str(path)] = schema
    problems = check_value(compiled_validator(schema), value)
    for pointer, message in problems:
        report.add(Violation(str(path), pointer, message), out)
    if problems:
        report.bad_records += 1
        report.bad_files += 1


def detect_schema(values: Sequence[Mapping[str, Any]], file: str) -> str:
    """The record schema whose required keys the records have, the most specific one; ambiguity is refused."""
    keys: set[str] = set()
    for value in values:
        keys.update(value)
    required = {name: record_required(name) for name in RECORD_SCHEMAS}
    fits = [name for name in RECORD_SCHEMAS if required[name][0] <= keys]
    if not fits:
        wanted = "; ".join(f"{name}: {', '.join(sorted(required[name][0]))}" for name in RECORD_SCHEMAS)
        raise PrefdataError(f"no known schema matches the keys {', '.join(sorted(keys)) or '(none)'} ({wanted}); "
                            "name one with --schema", file=file)
    # Keep the most specific: reward (user_input, completion, score) over actor (user_input, completion) over rlhf.
    best = [a for a in fits if not any(required[a][0] < required[b][0] for b in fits)]
    if len(best) > 1 and len({required[name][0] for name in best}) == 1:
        # Same keys (preference, preference_conversational): the value types decide.
        first = {key: next(v[key] for v in values if key in v) for key in required[best[0]][0]}
        fit = {name: sum(_json_type(first[k]) == _SCHEMA_TYPES.get(required[name][1].get(k, "")) for k in first)
               for name in best}
        best = [name for name in best if fit[name] == max(fit.values())]
    if len(best) > 1:
        raise PrefdataError(f"ambiguous: the keys fit the schemas {', '.join(best)}; name one with --schema", file=file)
    return best[0]


def _number_keys(name: str) -> frozenset[str]:
    return frozenset(k for k, t in record_required(name)[1].items() if t in ("number", "integer"))


def _from_csv(value: dict[str, Any], number_keys: frozenset[str]) -> dict[str, Any]:
    """CSV has only text: a cell where the schema wants a number is read as one when it spells one."""
    for key in number_keys & value.keys():
        cell = value[key]
        if isinstance(cell, str):
            with contextlib.suppress(ValueError):
                value[key] = int(cell) if cell.strip().lstrip("+-").isdigit() else float(cell)
    return value


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
    if schema == "auto":
        for item in records:
            head.append(item)
            good = [r.value for r in head if not isinstance(r, BadRecord)]
            if len(good) >= _AUTO_SAMPLE or len(head) >= _AUTO_LOOKAHEAD:
                break
        good = [r.value for r in head if not isinstance(r, BadRecord)]
        if not good:
            raise PrefdataError(f"none of the first {len(head):,} records is a JSON object, so no schema can be "
                                "detected; name one with --schema", file=file)
        schema = detect_schema(good, file)
        if note is not None:
            note(f"{file}: schema {schema} (detected from the keys {', '.join(sorted(set().union(*good)))})")
    validator = record_validator(schema)
    numbers = _number_keys(schema) if container_of(path) == "csv" else frozenset()
    report.files += 1
    report.schemas[file] = schema
    bad_before = report.bad_records
    for record in progress(_chain(head, records), desc=f"validate {Path(file).name}", quiet=quiet):
        report.records += 1
        where = f"{file}:{record.line}" if record.line is not None else f"{file}[{record.index}]"
        if isinstance(record, BadRecord):
            report.bad_records += 1
            report.add(Violation(where, record.reason, record.message), out)
            continue
        value = _from_csv(record.value, numbers) if numbers else record.value
        problems = check_value(validator, value)
        if problems:
            report.bad_records += 1
            for pointer, message in problems:
                report.add(Violation(where, pointer, message), out)
    if report.bad_records > bad_before:
        report.bad_files += 1


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


def validate_directory(path: str | os.PathLike, max_errors: int = DEFAULT_MAX_ERRORS, out: Echo | None = print,
                       quiet: bool = True, report: ValidationReport | None = None) -> ValidationReport:
    """Check a prefdata dataset directory (manifest, shards, counts, rows); see `prefdata.jobs.validate_dataset`."""
    from prefdata.jobs.validate_dataset import validate_directory as check_directory

    return check_directory(path, max_errors=max_errors, out=out, quiet=quiet, report=report)


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
    "SCHEMA_NAMES",
    "ValidationReport",
    "Violation",
    "detect_schema",
    "load_schema",
    "validate_directory",
    "validate_file",
    "validate_files",
    "validate_paths",
]
