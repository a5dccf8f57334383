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
_OPENERS = (b"[", b"{")
# A JSON string (skipped whole: brackets in text do not nest), a lone quote (a string cut off), or a bracket.
_BYTE_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|"|[\[\]{}]', re.DOTALL)
_TEXT_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|"|[\[\]{}]', re.DOTALL)


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``data`` nests arrays/objects deeper than ``limit`` (brackets inside strings ignored).

    Never says False for text that a decoder would take deeper than ``limit``. Fast for normal records: text holding
    no more than ``limit`` opening brackets cannot nest deeper, and counting them runs at memory speed.
    """
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= limit:
            return False
        return nesting_depth(data, 0, limit)[0] > limit
    if data.count(_OPENERS[0]) + data.count(_OPENERS[1]) <= limit:
        return False
    return _scan(_BYTE_TOKENS.finditer(data), b"[{", b"]}", limit, stop_at_zero=False)[0] > limit


def nesting_depth(text: str, start: int, limit: int) -> tuple[int, int | None]:
    """``(depth, end)`` of the array or object that starts at ``text[start]``: its nesting depth and the index just
    after it, or None when it does not end in ``text`` (or a string in it is cut off). Scans to the end even past
    ``limit``, so a caller can skip a value too deep to decode."""
    return _scan(_TEXT_TOKENS.finditer(text, start), "[{", "]}", limit, stop_at_zero=True)


def _scan(tokens, openers, closers, limit: int, *, stop_at_zero: bool) -> tuple[int, int | None]:
    depth = deepest = 0
    for token in tokens:
        symbol = token.group()
        if symbol in openers:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit and not stop_at_zero:
                    return deepest, None
        elif symbol in closers:
            depth -= 1
        elif len(symbol) == 1:  # a lone quote: a string that does not end here
            return deepest, None
        if stop_at_zero and depth <= 0:
            return deepest, token.end()
    return deepest, None


class TooDeepError(ValueError):
    """JSON text refused before decoding because it nests too deep (a ValueError, as `json.loads`'s own errors are)."""


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """`json.loads` that refuses text nested deeper than ``limit`` with a `TooDeepError` instead of recursing."""
    if too_deep(text, limit):
        raise TooDeepError(f"nested deeper than {limit} levels ({TOO_DEEP})")
    return json.loads(text)
