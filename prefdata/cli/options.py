"""What every verb module shares: options whose defaults are read from the library, and the shared option types.

Each default is written once, in the library function's signature or config dataclass; the click option reads it
from there (`from_signature`, `config_options`), so `prefdata X` and the function `X` cannot disagree. A verb module
imports only this module and its own job, never another verb.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import click

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational lines.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace OUT if it is an existing prefdata directory.")
Decorator = Callable[[Callable], Callable]


def signature_defaults(function: Callable) -> dict[str, Any]:
    """The parameters of ``function`` that have a default, with it."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def from_signature(function: Callable, name: str, *decls: str, **attrs: Any) -> Decorator:
    """A click option for parameter ``name`` of ``function``, carrying the function's own default.

    The option's Python name is the parameter's, so the verb can hand its keyword arguments straight through.
    """
    default = signature_defaults(function)[name]
    flags = decls or (f"--{name.replace('_', '-')}",)
    shown = default is not None and not isinstance(default, bool) and default != ()
    return click.option(*flags, name, default=default, show_default=shown, is_flag=isinstance(default, bool) or None,
                        **attrs)


def config_options(config_class: type, specs: Mapping[str, Mapping[str, Any]]) -> Decorator:
    """One option per field of the dataclass ``config_class``, default from the field; ``specs`` adds type and help.

    Every field must have a spec, so a new setting cannot be forgotten on the command line.
    """
    fields = dataclasses.fields(config_class)
    missing = {f.name for f in fields} ^ set(specs)
    if missing:
        raise TypeError(f"{config_class.__name__}: options and fields differ: {sorted(missing)}")
    options = []
    for field in fields:
        attrs = dict(specs[field.name])
        if field.default is dataclasses.MISSING:
            attrs.setdefault("required", True)
        else:
            attrs["default"] = field.default
            attrs.setdefault("show_default", field.default is not None and not isinstance(field.default, bool))
            if isinstance(field.default, bool):
                attrs["is_flag"] = True
        options.append(click.option(f"--{field.name.replace('_', '-')}", field.name, **attrs))

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def pop_config(config_class: type, kwargs: dict[str, Any]) -> Any:
    """Build ``config_class`` from the options `config_options` made, taking them out of ``kwargs``."""
    return config_class(**{field.name: kwargs.pop(field.name) for field in dataclasses.fields(config_class)})


class Numbers(click.ParamType):
    """``6,2,2`` -> ``(6.0, 2.0, 2.0)`` by ``parse``, the library's own parser (its error is one line, exit 2); a
    tuple, the library's default, passes through unchanged."""

    name = "N,N,…"

    def __init__(self, parse: Callable[[str], tuple[float, ...]]) -> None:
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        return value if isinstance(value, tuple) else self.parse(str(value))


class Names(click.ParamType):
    """``a,b`` -> ``["a", "b"]`` (empty parts dropped); the library's default ``None`` means all."""

    name = "A,B,…"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        return [part for part in str(value).split(",") if part]


def parse_map(values: tuple[str, ...], columns: Mapping[str, str | None]) -> dict[str, str]:
    """``--map prompt=question,chosen=good`` (repeatable) merged with the ``--<field>-column`` options."""
    mapping: dict[str, str] = {}
    for value in values:
        for pair in value.split(","):
            if not pair.strip():
                continue
            target, sep, column = pair.partition("=")
            if not sep or not target.strip() or not column.strip():
                raise click.BadParameter(f"{pair!r} is not FIELD=COLUMN", param_hint="--map")
            mapping[target.strip()] = column.strip()
    for target, column in columns.items():
        if column:
            mapping[target] = column
    return mapping


map_option = click.option("--map", "map_", multiple=True, metavar="FIELD=COLUMN,…",
                          help="Explicit column mapping, e.g. --map prompt=question,chosen=good,rejected=bad.")
ON_ERROR_HELP = "A bad record goes to quarantine.jsonl, or stops the run."
