"""DeepSpeed-Chat's ``prompt/chosen/rejected`` rows, whose prompt is rendered text: ``" Human: … Assistant:"``.

DeepSpeed-Chat's `raw_datasets.py` stores the conversation flattened into the prompt (``"\\n\\nHuman: …\\n\\nAssistant:"``
in Dahoas/rm-static, ``" Human: … Assistant:"`` in its own renderings); we parse the turns back into messages and drop
the one space that separates ``Assistant:`` from the reply.
"""

from __future__ import annotations

import re
from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import Message, make_row
from prefdata.formats.common import Format, Record, is_listy, leftover_meta, text

_BLANK_LINE_MARKER = re.compile(r"\n\n(Human|Assistant):")
_ANY_MARKER = re.compile(r"(?:^|(?<=\s))(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def looks_rendered(prompt: Any) -> bool:
    """True for a prompt in DeepSpeed-Chat's rendering: it starts with a ``Human:`` turn and ends with ``Assistant:``."""
    if not isinstance(prompt, str):
        return False
    first = _ANY_MARKER.search(prompt)
    return first is not None and first.group(1) == "Human" and prompt.rstrip().endswith("Assistant:")


def parse_rendered_prompt(prompt: str, field: str = "prompt") -> list[Message]:
    """``"[system\\n\\n]Human: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:"`` -> user a, assistant b, user c."""
    body = prompt.rstrip()
    if not body.endswith("Assistant:"):
        raise RowError("malformed_markers", "the rendered prompt does not end with 'Assistant:'", field)
    body = body[: -len("Assistant:")].lstrip(" ")
    # Blank-line markers (HH style) when the text has them: then "Human:" inside a sentence is not a turn.
    blank_lines = "\n\nAssistant:" in body or body.startswith("\n\nHuman:")
    body = body.lstrip()  # white space before the first marker is not text; a tab there must not hide the marker
    marker, body = (_BLANK_LINE_MARKER, "\n\n" + body) if blank_lines else (_ANY_MARKER, body)
    pieces = marker.split(body)
    # Text before the first turn is a system message (that is how `render(..., "dschat")` writes one).
    turns: list[Message] = [{"role": "system", "content": pieces[0].strip()}] if pieces[0].strip() else []
    for speaker, content in zip(pieces[1::2], pieces[2::2]):
        content = strip_one_space(content)
        turns.append({"role": _ROLES[speaker], "content": content if blank_lines else content.rstrip(" ")})
    if not turns or turns[-1]["role"] != "user":
        raise RowError("malformed_markers", "the rendered prompt does not end with a 'Human:' turn", field)
    turns[-1]["content"] = turns[-1]["content"].rstrip()  # the separator before the final "Assistant:"
    return turns


def strip_one_space(content: str) -> str:
    """The space after a marker is a separator, not part of the text."""
    return content[1:] if content.startswith(" ") else content


def parse(record: Record, source: str) -> dict[str, Any]:
    prompt = parse_rendered_prompt(text(record, "prompt"))
    chosen, rejected = text(record, "chosen"), text(record, "rejected")
    return make_row(prompt, strip_one_space(chosen), strip_one_space(rejected), source=source,
                    meta=leftover_meta(record, {"prompt", "chosen", "rejected"}))


FORMATS = [
    Format("dschat", "preference", frozenset({"prompt", "chosen", "rejected"}), parse,
           "DeepSpeed-Chat: prompt rendered as 'Human: … Assistant:', chosen, rejected strings",
           accepts=lambda r: not is_listy(r.get("prompt")) and looks_rendered(r.get("prompt")), schema="preference"),
]
