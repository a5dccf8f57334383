"""Input formats for `prefdata import`: a registry, detection by the keys of the first records, one parser each.

Each family lives in its own module (`chatllama`, `dschat`, `trl`, `sharegpt`, `alpaca`, `orca`, `unsup`, `mapping`)
as pure functions ``parse(record, source) -> row``. A format makes rows of one row schema (``preference`` or
``unsup``: what the CLI's ``--kind`` chooses) and names the JSON Schema in `schemas/` that describes its records.
Detection looks at the first records only (a large file is never read whole), prefers the most specific signature,
and refuses ambiguous input, naming the candidates. `prefdata import --format auto` and `prefdata validate --schema
auto` both detect with `detection_head` + `detect_from_records`, so they never disagree about what a file is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from itertools import islice

from prefdata.contract.errors import PrefdataError
from prefdata.formats import alpaca, chatllama, dschat, orca, sharegpt, trl, unsup
from prefdata.formats.common import Format, Record
from prefdata.formats.mapping import FIELDS as MAPPING_FIELDS
from prefdata.formats.mapping import mapping_format
from prefdata.storage.readers import DEFAULT_MAX_RECORD_BYTES, BadRecord, container_of, iter_records
from prefdata.storage.readers import Record as ReadRecord

FORMATS: dict[str, Format] = {
    f.name: f for module in (chatllama, dschat, trl, sharegpt, alpaca, orca, unsup) for f in module.FORMATS
}
ALIASES = {"hh": "trl-implicit", "hh-rlhf": "trl-implicit", "deepspeed-chat": "dschat", "text": "unsup-text"}
ROW_SCHEMAS = ("preference", "unsup")  # the rows a format makes; the CLI's --kind
KINDS = ROW_SCHEMAS  # the name `prefdata.jobs.importer` checks --kind against
DETECT_SAMPLE = 20

__all__ = [
    "ALIASES", "DETECT_SAMPLE", "FORMATS", "KINDS", "MAPPING_FIELDS", "ROW_SCHEMAS", "Format", "detect_format",
    "detect_from_records", "detection_head", "format_names", "get_format", "mapping_format", "most_specific",
    "resolve_format",
]


def _check_row_schema(row_schema: str) -> None:
    if row_schema not in ROW_SCHEMAS:
        raise PrefdataError(f"unknown kind {row_schema!r}; choose one of {', '.join(ROW_SCHEMAS)}")


def format_names(row_schema: str = "preference") -> list[str]:
    return [name for name, f in FORMATS.items() if f.row_schema == row_schema] + ["mapping"]


def get_format(name: str, row_schema: str = "preference", mapping: Mapping[str, str] | None = None) -> Format:
    """The format called ``name`` (``mapping`` builds one from the column mapping)."""
    _check_row_schema(row_schema)
    if name == "mapping" or (name == "auto" and mapping):
        if not mapping:
            raise PrefdataError("--format mapping needs column options (--map prompt=COLUMN,…)")
        return mapping_format(mapping, row_schema)
    if mapping:
        raise PrefdataError(f"column mapping options cannot be combined with --format {name}; use --format auto")
    fmt = FORMATS.get(ALIASES.get(name, name))
    if fmt is None or fmt.row_schema != row_schema:
        raise PrefdataError(f"unknown format {name!r} for --kind {row_schema}; "
                            f"formats: {', '.join(format_names(row_schema))}")
    return fmt


def most_specific(formats: Iterable[Format], keys: Iterable[str]) -> list[Format]:
    """Of ``formats``, those whose keys are all in ``keys`` and not a strict part of another such format's keys:
    ``{user_input, completion, score}`` is reward data, not actor data."""
    keys = set(keys)
    present = [f for f in formats if f.signature <= keys]
    return [f for f in present if not any(f.signature < other.signature for other in present)]


def _candidates(records: list[Record], row_schema: str) -> tuple[list[Format], list[Format]]:
    """``(fitting, by_keys)``: formats with the most specific signature among the keys present, and of those the ones
    whose value checks pass on every record that has values for their keys."""
    keys = set().union(*(r.keys() for r in records))
    by_keys = most_specific([f for f in FORMATS.values() if f.row_schema == row_schema], keys)
    fitting = []
    for fmt in by_keys:
        checked = [r for r in records if all(r.get(k) is not None for k in fmt.signature)]
        if checked and all(fmt.accepts(r) for r in checked):
            fitting.append(fmt)
    return fitting, by_keys


def detection_head(records: Iterable[ReadRecord | BadRecord], sample: int = DETECT_SAMPLE) -> list[ReadRecord | BadRecord]:
    """The records detection reads: the first ones up to ``sample`` good records, at most ``10 * sample`` in all."""
    head: list[ReadRecord | BadRecord] = []
    good = 0
    for item in islice(records, sample * 10):
        head.append(item)
        good += not isinstance(item, BadRecord)
        if good >= sample:
            break
    return head


def detect_from_records(records: Iterable[ReadRecord | BadRecord], file: str, row_schema: str = "preference",
                        sample: int = DETECT_SAMPLE, *, option: str = "--format") -> Format:
    """The one format that fits the first ``sample`` good records; `PrefdataError` when none or several do.

    ``option`` is how the caller's user names a format instead (``--format`` for import, ``--schema`` for validate).
    """
    good: list[ReadRecord] = []
    first_bad: BadRecord | None = None
    for item in records:
        if isinstance(item, BadRecord):
            first_bad = first_bad or item
            continue
        good.append(item)
        if len(good) >= sample:
            break
    if not good:
        if first_bad is not None:
            raise PrefdataError(f"no readable record to detect the format from; first defect: {first_bad.message} "
                                f"({first_bad.reason})", file=file, line=first_bad.line, index=first_bad.index)
        raise PrefdataError("holds no records", file=file)
    values = [r.value for r in good]
    found, by_keys = _candidates(values, row_schema)
    where = {"file": file, "line": good[0].line, "index": good[0].index}
    by_format = option == "--format"

    def named(formats: list[Format]) -> str:
        return ", ".join(f.name if by_format else f"{f.name} (schema {f.schema})" for f in formats)

    if len(found) > 1:
        raise PrefdataError(f"ambiguous format: the records fit {named(found)}; choose one with {option}", **where)
    if not found and by_keys:
        raise PrefdataError(f"the records have the keys of {named(by_keys)} but their values fit none of them (for "
                            f"instance rendered and plain prompts mixed); choose with {option}"
                            + (" or map columns" if by_format else ""), **where)
    if not found:
        keys = sorted(set().union(*(v.keys() for v in values)))
        hint = (f"{option} NAME" if not by_format else "--map text=COLUMN" if row_schema == "unsup"
                else "--format NAME or --map prompt=COLUMN,chosen=COLUMN,…")
        choices = (f"formats: {', '.join(format_names(row_schema))}" if by_format else
                   f"schemas: {', '.join(dict.fromkeys(f.schema for f in FORMATS.values() if f.schema))}")
        raise PrefdataError(f"no known {row_schema} format fits the keys {', '.join(keys)}; give {hint} ({choices})",
                            **where)
    return found[0]


def detect_format(path: str | os.PathLike, *, row_schema: str = "preference",
                  mapping: Mapping[str, str] | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                  sample: int = DETECT_SAMPLE) -> str:
    """Name of the format of ``path``, from the keys of its first records."""
    return resolve_format(path, "auto", row_schema, mapping, max_record_bytes=max_record_bytes, sample=sample).name


def resolve_format(path: str | os.PathLike, name: str = "auto", row_schema: str = "preference",
                   mapping: Mapping[str, str] | None = None, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                   sample: int = DETECT_SAMPLE) -> Format:
    """``--format NAME`` as given, or detected when ``auto``, for ``path``'s container (CSV numbers are text); plain
    text is only ever unsupervised text."""
    container = container_of(path)
    if container == "txt" and row_schema == "preference":
        raise PrefdataError("plain text holds no prompts or replies; import it with --kind unsup", file=str(path))
    if name != "auto" or mapping:
        return get_format(name, row_schema, mapping).for_container(container)
    _check_row_schema(row_schema)
    if container == "txt":
        return FORMATS["unsup-text"]
    stream = iter_records(path, max_record_bytes=max_record_bytes)
    try:
        return detect_from_records(detection_head(stream, sample), str(path), row_schema, sample).for_container(container)
    finally:
        stream.close()
