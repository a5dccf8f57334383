"""Tests that kill mutants of `prefdata/contract/nesting.py` (issue #15): the depth at and just past the limit, for
text and bytes, arrays and objects; brackets inside strings (empty, escaped quotes, escaped backslashes) not counted;
`nesting_depth`'s end index; `loads`'s refusal. Depths and indexes are counted by hand from the literals here.

Equivalent survivors:
- `too_deep`'s shortcut `<= limit` -> `< limit`: text with exactly ``limit`` openers goes to the scan, which cannot
  find it deeper than ``limit`` either.
- `_scan`'s `depth > deepest` -> `>=`: on equality ``deepest`` is set to the value it has, and it did not exceed the
  limit at the step before.
- `_scan`'s `string_end > 0` -> `>= 0` / `> 1`, and `string_end < 0` -> `<= 0`: a closing quote is found after the
  opening one, so it is at index >= 1; at index 1 the character before it is the opening quote, never a backslash.
- `too_deep`'s ``stop_at_zero=False`` -> ``None``: both are false.
- `_scan`'s ``"[{"`` -> ``"XX[{XX"``: ``in`` tests one bracket character, which is never an X.
- `_scan`'s `position < size` -> `<=`: at the end `find` and `finditer` find nothing and the loop breaks.
- `_escaped`'s `before > 0` -> `>= 0`: at 0 the slice ``text[-1:0]`` is empty, never a backslash.
"""

from __future__ import annotations

import json

import pytest

from prefdata.contract.nesting import DOCUMENT_DEPTH, MAX_DEPTH, TOO_DEEP, TooDeepError, loads, nesting_depth, too_deep


@pytest.mark.parametrize("kind", [str, bytes])
@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"a":', "}")])
def test_depth_at_the_limit_passes_and_one_more_is_too_deep(kind, open_, close):
    def nested(depth: int):
        text = open_ * depth + "1" + close * depth
        return text if kind is str else text.encode()

    assert not too_deep(nested(3), 3)
    assert too_deep(nested(4), 3)
    assert too_deep(nested(4)[:-1], 3)  # cut off: still too deep


def test_default_limit_is_max_depth_of_100_and_documents_get_twice_that():
    assert (MAX_DEPTH, DOCUMENT_DEPTH, TOO_DEEP) == (100, 200, "too_deep")
    assert not too_deep("[" * 100 + "]" * 100)
    assert too_deep("[" * 101 + "]" * 101)


def test_many_shallow_values_are_not_deep_and_a_deep_one_after_them_is():
    assert not too_deep("[1] [2] [3] [4] [5]", 3)
    assert too_deep("[1] [[[[1]]]]", 3)  # the scan goes on past the end of the first value
    assert not too_deep("[[[1]]] [[[1]]]", 3)  # depth goes back down after a value ends


@pytest.mark.parametrize("text", [
    '"[[[[["',  # a JSON string at the very start
    '["[[[[["]',
    '["", "[[[[["]',  # an empty string before
    '["a\\"", "[[[[["]',  # an escaped quote right before the closing one
    '["[[[[[\\"", 1]',  # brackets, then an escaped quote, in one string
    '["a\\\\\\"[[[[[", 1]',  # three backslashes: an escaped backslash, then an escaped quote
    '["a\\\\", "[[[[["]',  # an escaped backslash: the quote after it does close the string
])
def test_brackets_inside_strings_do_not_count(text):
    assert not too_deep(text, 3)
    assert not too_deep(text.encode(), 3)


@pytest.mark.parametrize("text", [
    '"a" [[[[1]]]]',  # a string at the start, then a deep value
    '["a\\\\", [[[[1]]]]]',  # after an escaped backslash the string has ended
    '["\\"[", [[[[1]]]]]',  # an escaped quote then a bracket, both inside the string
])
def test_brackets_after_a_string_count(text):
    assert too_deep(text, 3)
    assert too_deep(text.encode(), 3)


@pytest.mark.parametrize("text, start, depth, end", [
    ("[1]", 0, 1, 3),
    ('["a"]', 0, 1, 5),
    ('[""]', 0, 1, 4),
    ('["a\\""]', 0, 1, 7),
    ('["a\\\\"]', 0, 1, 7),
    ('x [[1], {"b": [2]}] tail', 2, 3, 19),
    ("[[[[[1]]]]] [1]", 0, 5, 11),  # scans to the end of the value even past the limit
])
def test_nesting_depth_gives_the_depth_and_the_index_after_the_value(text, start, depth, end):
    assert nesting_depth(text, start, 3) == (depth, end)
    json.loads(text[start:end])  # the slice is exactly one whole value


@pytest.mark.parametrize("text, depth", [("[[1], [2", 2), ('["cut off', 1), ("[[[[[1", 5)])
def test_nesting_depth_of_a_value_that_does_not_end_has_no_end(text, depth):
    assert nesting_depth(text, 0, 3) == (depth, None)


def test_loads_decodes_at_the_limit_and_refuses_past_it():
    assert loads("[[[1]]]", 3) == [[[1]]]
    assert loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(TooDeepError, match=r"^nested deeper than 3 levels \(too_deep\)$"):
        loads("[[[[1]]]]", 3)
    with pytest.raises(TooDeepError, match=r"^nested deeper than 100 levels \(too_deep\)$"):
        loads("[" * 101 + "]" * 101)
    assert issubclass(TooDeepError, ValueError)
