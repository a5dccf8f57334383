"""Tests that kill mutants of `prefdata/formats/dschat.py` the suite let survive (issue #15): trailing white space
after the final ``Assistant:``, a leading space before a blank-line (HH style) rendering, ``Human:`` inside a sentence,
the new lines a single-space rendering keeps, each refusal (reason, field, message) and the leftover keys (``meta``).
Prompts are written here; expected turns follow from them by hand.

A survivor showed a bug, fixed in `parse_rendered_prompt`: before a blank-line rendering's first marker only new
lines were stripped, so a tab there hid the first ``Human:`` turn inside a system message.

No survivor is equivalent, of the sampled run (80 mutants) or of a run over every mutant.
"""

from __future__ import annotations

import pytest
from test_mutants_formats_common import refusal

from prefdata.formats.dschat import looks_rendered, parse, parse_rendered_prompt


def test_trailing_white_space_after_the_final_assistant_marker_is_ignored():
    assert looks_rendered("Human: Hi Assistant:  \n")
    assert parse_rendered_prompt("Human: Hi Assistant:  \n") == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("prompt", ["\n\nHuman: I said Human: hello\n\nAssistant:",
                                    " \n\nHuman: I said Human: hello\n\nAssistant:"])
def test_blank_line_rendering_keeps_a_marker_inside_a_sentence_as_text(prompt):
    assert parse_rendered_prompt(prompt) == [{"role": "user", "content": "I said Human: hello"}]


def test_single_space_rendering_strips_only_spaces_from_earlier_turns():
    assert parse_rendered_prompt("Human: Hi\nAssistant: Hello\nHuman: Bye Assistant:") == [
        {"role": "user", "content": "Hi\n"}, {"role": "assistant", "content": "Hello\n"},
        {"role": "user", "content": "Bye"}]
    assert parse_rendered_prompt("Human: Press X  Assistant: Done  Human: Bye Assistant:") == [
        {"role": "user", "content": "Press X"}, {"role": "assistant", "content": "Done"},
        {"role": "user", "content": "Bye"}]


def test_blank_line_rendering_keeps_earlier_turns_verbatim():
    assert parse_rendered_prompt("\n\nHuman: Hi \n\nAssistant: Hello \n\nHuman: Bye\n\nAssistant:") == [
        {"role": "user", "content": "Hi "}, {"role": "assistant", "content": "Hello "},
        {"role": "user", "content": "Bye"}]


def test_text_before_the_first_turn_is_the_system_message_verbatim():
    assert parse_rendered_prompt("Xavier is brief.\n\nHuman: Hi\n\nAssistant:") == [
        {"role": "system", "content": "Xavier is brief."}, {"role": "user", "content": "Hi"}]


def test_white_space_before_the_first_blank_line_turn_is_not_a_system_message():
    """A bug the mutants showed: only new lines were stripped before the first turn, so a tab or a carriage return
    there hid the first ``Human:`` marker, and that whole turn became a system message."""
    assert parse_rendered_prompt("\t\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant:") == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"}]


@pytest.mark.parametrize("prompt", ["Assistant: Hello Human: Hi Assistant:", "Hi there. Assistant:"])
def test_a_rendering_must_open_with_a_human_turn(prompt):
    assert not looks_rendered(prompt)


@pytest.mark.parametrize("prompt, message", [
    ("Human: Hi", "the rendered prompt does not end with 'Assistant:'"),
    ("Human: Hi Assistant: Hello Assistant:", "the rendered prompt does not end with a 'Human:' turn"),
])
def test_malformed_renderings_are_refused_with_the_field(prompt, message):
    assert refusal(parse_rendered_prompt, prompt) == ("malformed_markers", "prompt", message)


def test_parse_keeps_only_unread_keys_in_meta():
    row = parse({"prompt": "Human: Hi Assistant:", "chosen": " Hello.", "rejected": " Go away.", "lang": "en"}, "src")
    assert (row["source"], row["chosen"], row["rejected"], row["meta"]) == ("src", "Hello.", "Go away.", '{"lang":"en"}')
