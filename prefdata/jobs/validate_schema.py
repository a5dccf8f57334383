"""The bundled JSON Schemas of `schemas/`: loading, compiling once, and error messages a user can act on.

Used by file validation (`prefdata.jobs.validate`) for records and documents, and by directory validation
(`prefdata.jobs.validate_dataset`) for a dataset's manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from prefdata.contract import nesting
from prefdata.contract.errors import PrefdataError
from prefdata.contract.resources import schema_path

RECORD_SCHEMAS = ("actor", "reward", "rlhf", "preference", "preference_conversational", "preference_implicit",
                  "prompt_completion", "messages", "sharegpt", "alpaca", "orca")
DOCUMENT_SCHEMAS = ("templates", "manifest")
SCHEMA_NAMES = RECORD_SCHEMAS + DOCUMENT_SCHEMAS
_PREVIEW = 60
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
               int: "a number", float: "a number"}


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
        return nesting.loads(path.read_text(encoding="utf-8"), nesting.DOCUMENT_DEPTH)
    except (OSError, ValueError) as e:
        raise PrefdataError(f"unreadable schema: {e}", file=str(path)) from None


@cache
def compiled_validator(name: str, part: str | None = None):
    """A `CompiledSchema` built once, for the whole schema or for one of its ``$defs`` (``part``).

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
        return CompiledSchema(Draft202012Validator(inlined), fast_acceptor(inlined))
    # Recursive or remote references: let `referencing` resolve them, through the schema's $id.
    base = schema.get("$id") or f"urn:prefdata:schema-file:{name}"
    registry = Registry().with_resource(base, Resource.from_contents({**schema, "$id": base}))
    return CompiledSchema(Draft202012Validator({"$ref": base if part is None else f"{base}#/$defs/{part}"},
                                               registry=registry), None)


# Keywords whose meaning is the same in draft-07 (what fastjsonschema compiles) and draft 2020-12 (what the bundled
# schemas are written in). A schema using any other keyword gets no fast path.
_SAME_IN_DRAFT7 = frozenset({"type", "properties", "required", "items", "pattern", "minItems", "maxItems", "enum",
                             "const", "additionalProperties", "minimum", "maximum", "minLength", "maxLength",
                             "title", "description", "$id", "$schema", "$comment", "anyOf", "oneOf", "allOf", "not"})


def _keywords(node: Any, inside_properties: bool = False) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set() if inside_properties else set(node)
    for key, value in node.items():
        found |= _keywords(value, inside_properties=key == "properties" and not inside_properties)
    return found


def fast_acceptor(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A compiled check (fastjsonschema) that says quickly whether a value is valid, or None where it cannot be
    trusted to agree with jsonschema. Valid records, the common case, then skip jsonschema's interpreter, whose
    messages are only needed for invalid ones (bench/validate_bench.py: `validate FILE` ~3x faster)."""
    if not _keywords(schema) <= _SAME_IN_DRAFT7:
        return None
    import fastjsonschema

    compiled = fastjsonschema.compile({**schema, "$schema": "http://json-schema.org/draft-07/schema#"})

    def accepts(value: Any) -> bool:
        try:
            compiled(value)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts


@dataclass(frozen=True)
class CompiledSchema:
    """jsonschema's validator, for its precise errors, with a compiled fast path for values that are valid."""

    validator: Any
    accepts: Callable[[Any], bool] | None

    def iter_errors(self, value: Any) -> Iterator[Any]:
        if self.accepts is not None and self.accepts(value):
            return iter(())
        return self.validator.iter_errors(value)

    def is_valid(self, value: Any) -> bool:
        return next(self.iter_errors(value), None) is None


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


def json_type(value: Any) -> str:
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
        return json_pointer(path), f"{_preview(value)} is {json_type(value)}, expected {article} {wanted}"
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


