"""A JSON array file read element by element, each with the line it starts on, in bounded memory.

The text is decoded in chunks of about `_CHUNK` bytes (a one-line 1 GB array is never read whole); each element is
decoded from a sliding buffer, its nesting depth checked before the recursive decoder sees it, its size against the
per-record budget.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from prefdata.contract.errors import PrefdataError
from prefdata.contract.nesting import MAX_DEPTH, TOO_DEEP, nesting_depth
from prefdata.storage.record_types import TOO_DEEP_MESSAGE, BadRecord, Record, too_large

_BOM = codecs.BOM_UTF8
_CHUNK = 1 << 20
_MIN_WINDOW = 4096  # characters a JSON array element is first decoded within (then twice the previous element)


def _complete_utf8_prefix(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a multi-byte UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # ASCII or a lead byte: how long should its character be?
            need = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if need > back else len(data)
    return len(data)


def decoded_chunks(stream: BinaryIO, file: str) -> Iterator[str]:
    """Text in chunks of about `_CHUNK` bytes (a one-line file is never read whole); bad UTF-8 names its line."""
    carry, lines_before, first = b"", 0, True
    while True:
        block = stream.read(_CHUNK)
        data = carry + block
        if first and data:
            data = data[len(_BOM) :] if data.startswith(_BOM) else data
            first = False
        cut = _complete_utf8_prefix(data) if block else len(data)
        data, carry = data[:cut], data[cut:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = lines_before + data.count(b"\n", 0, e.start) + 1
            raise PrefdataError(f"invalid UTF-8 bytes ({e.reason})", file=file, line=line) from None
        lines_before += data.count(b"\n")
        if not block:
            if text:
                yield text
            return
        yield text


def iter_json_array(stream: BinaryIO, file: str, max_bytes: int) -> Iterator[Record | BadRecord]:
    """A JSON array streamed element by element with `JSONDecoder.raw_decode` over a sliding buffer.

    Hand-written, kept: ijson parses about 2x faster but cannot say on which line an element starts, so quarantine
    entries and errors would lose their line (`bench/infra.py` part a).
    """
    chunks = decoded_chunks(stream, file)
    decoder = json.JSONDecoder()
    window = _MIN_WINDOW
    buf, pos, line, eof = "", 0, 1, False

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = next(chunks, "")
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_space() -> str:
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf) or not more():
                return buf[pos] if pos < len(buf) else ""

    first = skip_space()
    if first == "{":
        raise PrefdataError("a single JSON object; expected an array of records or JSON Lines", file=file, line=line)
    if first != "[":
        what = "nothing but white space" if not first else f"{first!r}"
        raise PrefdataError(f"the top-level value starts with {what}; expected a JSON array", file=file, line=line)
    pos += 1
    index = 0
    if skip_space() == "]":
        pos += 1
    else:
        while True:
            skip_space()
            start_line = line
            while True:
                # The depth first: an element nested too deep never reaches the (recursive) decoder.
                depth, end = 0, 0
                if buf[pos : pos + 1] in ("[", "{"):
                    decoded = _decode_shallow(decoder, buf, pos, window)
                    if decoded is not None:
                        value, end = decoded
                        break
                    depth, end = nesting_depth(buf, pos, MAX_DEPTH)
                try:
                    if end is None:
                        raise ValueError("the element continues in the next chunk")
                    if depth > MAX_DEPTH:
                        value = None
                        break
                    value, end = decoder.raw_decode(buf, pos)
                    if end == len(buf) and not eof and isinstance(value, (int, float)):
                        raise ValueError("a number may continue in the next chunk")
                    break
                except ValueError as e:
                    if len(buf) - pos > max_bytes:
                        raise PrefdataError(f"element {index} is larger than {max_bytes} bytes (record_too_large)",
                                            file=file, line=start_line) from None
                    if not more():
                        message = getattr(e, "msg", str(e))
                        raise PrefdataError(f"truncated or invalid JSON: {message}", file=file, line=start_line) from None
            start, pos = pos, end
            window = max(_MIN_WINDOW, 2 * (end - start))
            line += buf.count("\n", start, end)
            if depth > MAX_DEPTH:
                yield BadRecord(file, index, start_line, TOO_DEEP, TOO_DEEP_MESSAGE, buf[start:end])
            elif (end - start) * 4 > max_bytes and (size := len(buf[start:end].encode())) > max_bytes:  # 1-4 bytes a character
                yield BadRecord(file, index, start_line, "record_too_large", too_large(size, max_bytes), None)
            elif isinstance(value, dict):
                yield Record(file, index, start_line, value)
            else:
                yield BadRecord(file, index, start_line, "not_an_object",
                                f"array element is a JSON {type(value).__name__}, not an object", value)
            index += 1
            following = skip_space()
            pos += 1
            if following == "]":
                break
            if following != ",":
                found = repr(following) if following else "the end of the file"
                raise PrefdataError(f"truncated or invalid JSON: expected ',' or ']', found {found}", file=file,
                                    line=line)
    if skip_space():
        raise PrefdataError("unexpected data after the closing ']'", file=file, line=line)


def _decode_shallow(decoder: json.JSONDecoder, buf: str, pos: int, window: int) -> tuple[Any, int] | None:
    """The array or object at ``buf[pos]`` when it ends within ``window`` characters that hold at most `MAX_DEPTH`
    opening brackets (so the decoder cannot nest deeper); None otherwise, for the exact scan (`nesting_depth`).

    Counting brackets in a window runs at memory speed; scanning every element exactly took longer than decoding it.
    """
    stop = min(len(buf), pos + window)
    if buf.count("[", pos, stop) + buf.count("{", pos, stop) > MAX_DEPTH:
        return None
    try:
        value, end = decoder.raw_decode(buf[pos:stop])
    except ValueError:
        return None
    return value, pos + end
