"""Explicit column mapping for files in no known format: ``--map prompt=question,chosen=good,rejected=bad``.

A mapped prompt column may hold a string (one user message) or a list of messages; reply columns a string or one
assistant message; score columns numbers (or numbers as text, as in CSV). Columns not mapped are kept in `meta`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import make_row, make_unsup_row
from prefdata.formats.common import (
    Format,
    Record,
    as_text,
    is_listy,
    leftover_meta,
    messages,
    reply,
    require,
    score,
    text,
    user_prompt,
)

FIELDS = {
    "preference": ("prompt", "chosen", "rejected", "chosen_score", "rejected_score", "system", "group"),
    "unsup": ("text",),
}
REQUIRED = {"preference": "prompt", "unsup": "text"}


def check_mapping(mapping: Mapping[str, str], row_schema: str) -> dict[str, str]:
    """Refuse unknown target fields and a mapping without the one field a row cannot do without."""
    allowed = FIELDS[row_schema]
    for target, column in mapping.items():
        if target not in allowed:
            raise PrefdataError(f"unknown field {target!r} in the column mapping; fields: {', '.join(allowed)}",
                                field=target)
        if not isinstance(column, str) or not column:
            raise PrefdataError("needs a column name", field=target)
    if REQUIRED[row_schema] not in mapping:
        raise PrefdataError(f"the column mapping must name the {REQUIRED[row_schema]} column "
                            f"(--map {REQUIRED[row_schema]}=COLUMN)", field=REQUIRED[row_schema])
    return dict(mapping)


def parse_mapped(mapping: Mapping[str, str], record: Record, source: str) -> dict[str, Any]:
    def optional(target: str) -> Any:
        """A mapped column must exist in every record; its value may be null (no second reply, no score)."""
        if target not in mapping:
            return None
        if mapping[target] not in record:
            raise RowError("missing_field", "mapped column is missing", mapping[target])
        return record[mapping[target]]

    prompt_value = require(record, mapping["prompt"])
    if is_listy(prompt_value):
        prompt = messages(prompt_value, mapping["prompt"])
    else:
        prompt = user_prompt(as_text(prompt_value, mapping["prompt"]))
    system = optional("system")
    if system is not None and not (prompt and prompt[0]["role"] == "system"):
        prompt = [{"role": "system", "content": as_text(system, mapping["system"])}, *prompt]
    chosen = None if optional("chosen") is None else reply(record[mapping["chosen"]], mapping["chosen"])
    rejected = None if optional("rejected") is None else reply(record[mapping["rejected"]], mapping["rejected"])
    group = optional("group")
    return make_row(
        prompt,
        chosen,
        rejected,
        source=source,
        group=None if group is None else str(group),
        chosen_score=score(record, mapping["chosen_score"]) if optional("chosen_score") is not None else None,
        rejected_score=score(record, mapping["rejected_score"]) if optional("rejected_score") is not None else None,
        meta=leftover_meta(record, set(mapping.values())),
    )


def parse_mapped_text(mapping: Mapping[str, str], record: Record, source: str) -> dict[str, Any]:
    return make_unsup_row(text(record, mapping["text"]), source=source, meta=leftover_meta(record, {mapping["text"]}))


def mapping_format(mapping: Mapping[str, str], row_schema: str) -> Format:
    """The format ``--map`` describes, for rows of ``row_schema`` (preference or unsup)."""
    mapping = check_mapping(mapping, row_schema)
    parse = partial(parse_mapped if row_schema == "preference" else parse_mapped_text, mapping)
    described = ", ".join(f"{target}={column}" for target, column in mapping.items())
    numbers = frozenset(mapping[target] for target in ("chosen_score", "rejected_score") if target in mapping)
    return Format("mapping", row_schema, frozenset(mapping.values()), parse, f"explicit column mapping: {described}",
                  number_fields=numbers)
