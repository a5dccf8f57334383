"""How deep JSON text nests, found by a byte scan, so no recursive decoder ever sees a record nested too deep.

`json.loads` raises RecursionError near 1,000 levels, jsonschema sooner, and pyarrow's JSON reader dies by SIGSEGV
(a C stack overflow) on a line nested 100,000 deep: every reader asks `too_deep` before decoding. A preference
record nests a handful of levels; `MAX_DEPTH` leaves ample room and keeps every decoder (and `json.dumps` of the
record) far from its own limit. The reason code of a refused record is `TOO_DEEP`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100
DOCUMENT_DEPTH = 2 * MAX_DEPTH  # files prefdata writes wrap records (a quarantine line, a manifest): room for that
TOO_DEEP = "too_deep"
_BRACKETS = re.compile(r"[\[\]{}]")
_BYTE_BRACKETS = re.compile(rb"[\[\]{}]")


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``data`` nests arrays/objects deeper than ``limit`` (brackets inside strings ignored).

    Never says False for text that a decoder would take deeper than ``limit``. Fast for normal records: text holding
    no more than ``limit`` opening brackets cannot nest deeper, and counting them runs at memory speed.
    """
    opener, closer = ("[", "{") if isinstance(data, str) else (b"[", b"{")
    if data.count(opener) + data.count(closer) <= limit:
        return False
    return _scan(data, 0, limit, stop_at_zero=False)[0] > limit


def nesting_depth(text: str, start: int, limit: int) -> tuple[int, int | None]:
    """``(depth, end)`` of the array or object that starts at ``text[start]``: its nesting depth and the index just
    after it, or None when it does not end in ``text`` (or a string in it is cut off). Scans to the end even past
    ``limit``, so a caller can skip a value too deep to decode."""
    return _scan(text, start, limit, stop_at_zero=True)


def _scan(text: str | bytes, start: int, limit: int, *, stop_at_zero: bool) -> tuple[int, int | None]:
    """Depth by brackets between strings; each string is skipped with `find` (memchr speed), not character by
    character: a regex over the whole text ran 3x slower than `json` decoding it (HH-RLHF records)."""
    quote, backslash, opens = ('"', "\\", "[{") if isinstance(text, str) else (b'"', b"\\", b"[{")
    brackets = _BRACKETS if isinstance(text, str) else _BYTE_BRACKETS
    depth = deepest = 0
    position, size = start, len(text)
    while position < size:
        string_start = text.find(quote, position)
        for bracket in brackets.finditer(text, position, size if string_start < 0 else string_start):
            if bracket.group() in opens:
                depth += 1
                if depth > deepest:
                    deepest = depth
                    if deepest > limit and not stop_at_zero:
                        return deepest, None
            else:
                depth -= 1
                if stop_at_zero and depth <= 0:
                    return deepest, bracket.end()
        if string_start < 0:
            break
        string_end = text.find(quote, string_start + 1)
        while string_end > 0 and _escaped(text, string_end, backslash):
            string_end = text.find(quote, string_end + 1)
        if string_end < 0:  # a string cut off: it does not end here
            break
        position = string_end + 1
    return deepest, None


def _escaped(text: str | bytes, index: int, backslash: str | bytes) -> bool:
    """Whether the quote at ``index`` is escaped: an odd number of backslashes right before it."""
    before = index
    while before > 0 and text[before - 1 : before] == backslash:
        before -= 1
    return (index - before) % 2 == 1


class TooDeepError(ValueError):
    """JSON text refused before decoding because it nests too deep (a ValueError, as `json.loads`'s own errors are)."""


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """`json.loads` that refuses text nested deeper than ``limit`` with a `TooDeepError` instead of recursing."""
    if too_deep(text, limit):
        raise TooDeepError(f"nested deeper than {limit} levels ({TOO_DEEP})")
    return json.loads(text)
