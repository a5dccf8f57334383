"""Tests that kill mutants of `prefdata/contract/render.py` the suite let survive (issue #15): the two refusals'
messages. Equivalent survivor: ``tokenize=None`` for ``tokenize=False`` (transformers tests it for truth, so both give
text)."""

from __future__ import annotations

import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import render

PROMPT = [{"role": "user", "content": "Hello?"}]


def test_unknown_template_names_the_templates():
    with pytest.raises(PrefdataError, match=r"unknown template 'llama'; choose one of dschat, chatml, tokenizer"):
        render(PROMPT, "Hi.", template="llama")


def test_a_tokenizer_without_a_chat_template_is_refused_with_the_way_out():
    class NoTemplate:
        chat_template = None

    with pytest.raises(PrefdataError, match=r"the tokenizer has no chat template; use --template dschat or chatml"):
        render(PROMPT, "Hi.", template="tokenizer", tokenizer=NoTemplate())
