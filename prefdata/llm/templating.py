"""Prompt templates: a flat JSON object of strings with ``{name}`` placeholders (ChatLLaMA's templates.json shape).

Templates come from users, so filling them must not be a way to run code or read objects: `str.format` would happily
evaluate ``{x.__class__.__mro__}`` or ``{x[0]}``. `SafeFormatter` accepts only plain identifiers, with no conversion
(``!r``) and no format spec (``:>10``), and values are always strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Mapping
from pathlib import Path

from prefdata.contract.errors import PrefdataError

# What each bundled role needs; a template may not use anything else.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "actor": frozenset({"user_input"}),
    "reward": frozenset({"user_input", "completion"}),
    "rlhf": frozenset({"examples", "count"}),
    "judge_pairwise": frozenset({"user_input", "response_a", "response_b"}),
}
REQUIRED_KEYS = ("actor", "reward", "rlhf")
# `prefdata rank --by judge` rates each aspect named ``aspect_<name>`` (UltraFeedback's four are bundled; add your own).
ASPECT_PREFIX = "aspect_"
ASPECT_FIELDS = frozenset({"user_input", "completion"})


def aspect_names(templates: Mapping[str, str]) -> list[str]:
    """The aspects a templates file defines (``aspect_helpfulness`` -> ``helpfulness``), in file order."""
    return [key[len(ASPECT_PREFIX):] for key in templates if key.startswith(ASPECT_PREFIX)]


class TemplateError(PrefdataError):
    """A template that is malformed or asks for something it may not have."""


def placeholders(template: str) -> list[str]:
    """The placeholder names of ``template``, refusing anything but plain ``{identifier}`` fields."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise TemplateError(f"malformed template: {e} (write a literal brace as {{{{ or }}}})") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"placeholder {{{field}}} is not allowed: only plain {{name}} fields are substituted")
        if conversion is not None or spec:
            raise TemplateError(f"placeholder {{{field}}} may not carry a conversion or format spec")
        names.append(field)
    return names


class SafeFormatter(string.Formatter):
    """`string.Formatter` that substitutes plain named fields with strings and nothing else."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            raise TemplateError(f"placeholder {{{field_name}}} is not allowed: only plain {{name}} fields")
        if field_name not in kwargs:
            raise TemplateError(f"placeholder {{{field_name}}} has no value")
        return str(kwargs[field_name]), field_name

    def convert_field(self, value, conversion):
        if conversion is not None:
            raise TemplateError("conversions (!r, !s, !a) are not allowed in templates")
        return value

    def format_field(self, value, format_spec):
        if format_spec:
            raise TemplateError("format specs are not allowed in templates")
        return value


_FORMATTER = SafeFormatter()


def fill(template: str, **values: object) -> str:
    """Fill ``template``; every placeholder must be a plain name given in ``values``."""
    placeholders(template)
    return _FORMATTER.vformat(template, (), {k: str(v) for k, v in values.items()})


def template_sha256(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def default_templates_path() -> Path:
    from prefdata.contract.resources import templates_path

    return templates_path()


def load_templates(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Read and check a templates file: a JSON object of strings with ``actor``, ``reward`` and ``rlhf``.

    Each known role may use only its own placeholders, so a typo is caught before any request is paid for.
    """
    p = Path(path) if path is not None else default_templates_path()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefdataError("no such file", file=str(p)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PrefdataError(f"not valid JSON: {e}", file=str(p)) from None
    check_templates(data, str(p))
    return data


def check_templates(data: object, file: str = "templates") -> None:
    if not isinstance(data, Mapping):
        raise PrefdataError("must be a JSON object of template strings", file=file)
    for key in REQUIRED_KEYS:
        if key not in data:
            raise PrefdataError(f"the {key!r} template is missing", file=file, field=key)
    for key, value in data.items():
        if not isinstance(value, str):
            raise PrefdataError(f"is {type(value).__name__}, not a string", file=file, field=key)
        try:
            names = set(placeholders(value))
        except TemplateError as e:
            raise PrefdataError(e.message, file=file, field=key) from None
        allowed = TEMPLATE_FIELDS.get(key, ASPECT_FIELDS if key.startswith(ASPECT_PREFIX) else None)
        if allowed is None:
            continue
        if names - allowed:
            unknown = ", ".join(f"{{{n}}}" for n in sorted(names - allowed))
            raise PrefdataError(f"unknown placeholder(s) {unknown}; allowed: {_fields(allowed)}", file=file, field=key)
        if allowed - names:
            raise PrefdataError(f"must use the placeholder(s) {_fields(allowed - names)}", file=file, field=key)


def _fields(names: frozenset[str] | set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))
