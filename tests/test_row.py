"""The canonical row contract (design §1): ids, groups, checks, kinds."""

from __future__ import annotations

import hashlib
import json

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import (
    PREFERENCE_SCHEMA,
    UNSUP_SCHEMA,
    make_row,
    make_unsup_row,
    prompt_group,
    row_kind,
    row_meta,
)

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a root vegetable."}]


def expected_id(prompt, chosen, rejected) -> str:
    text = json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def test_id_is_sha256_of_canonical_content_and_ignores_source_and_key_order():
    a = make_row(PROMPT, "Parsnip.", "A tomato.", source="custom/a")
    reordered = [{"content": m["content"], "role": m["role"]} for m in PROMPT]
    b = make_row(reordered, "Parsnip.", "A tomato.", source="hh-rlhf/harmless-base", meta={"x": 1})
    assert a["id"] == b["id"] == expected_id(PROMPT, "Parsnip.", "A tomato.")
    assert a["id"] != make_row(PROMPT, "Parsnip", "A tomato.", source="s")["id"]


def test_columns_follow_schema_order_and_group_defaults_to_prompt_hash():
    row = make_row(PROMPT, "Parsnip.", None, source="s")
    assert list(row) == PREFERENCE_SCHEMA.names
    assert row["group"] == prompt_group(PROMPT)
    assert make_row(PROMPT, "Beet.", source="s", group="post-7")["group"] == "post-7"


def test_non_ascii_is_kept_verbatim_in_meta_and_content():
    row = make_row([{"role": "user", "content": "推荐一种根茎类蔬菜"}], "胡萝卜。", source="s", meta={"域": "烹饪"})
    assert row["prompt"][0]["content"] == "推荐一种根茎类蔬菜"
    assert row_meta(row) == {"域": "烹饪"} and "烹饪" in row["meta"]


@pytest.mark.parametrize(
    ("prompt", "chosen", "rejected", "reason"),
    [
        ([], "a", None, "empty_prompt"),
        ([{"role": "user", "content": "  "}], "a", None, "empty_prompt"),
        ([{"role": "assistant", "content": "hi"}], "a", None, "prompt_not_ending_with_user"),
        ([{"role": "bot", "content": "hi"}], "a", None, "bad_role"),
        ([{"role": "user", "content": 3}], "a", None, "schema_violation"),
        (PROMPT, "same", "same", "identical_pair"),
        (PROMPT, " ", "b", "empty_reply"),
        (PROMPT, None, "b", "missing_field"),
        (PROMPT, 5, None, "schema_violation"),
    ],
)
def test_contract_violations_have_reason_codes(prompt, chosen, rejected, reason):
    with pytest.raises(RowError) as info:
        make_row(prompt, chosen, rejected, source="s")
    assert info.value.reason == reason


def test_scores_must_be_finite_numbers_and_zero_is_valid():
    assert make_row(PROMPT, "a", source="s", chosen_score=0)["chosen_score"] == 0.0
    for bad in ("3", float("nan"), True):
        with pytest.raises(RowError):
            make_row(PROMPT, "a", source="s", chosen_score=bad)


def test_row_kinds():
    assert row_kind(make_row(PROMPT, "a", "b", source="s")) == "pair"
    assert row_kind(make_row(PROMPT, "a", source="s")) == "demonstration"
    assert row_kind(make_row(PROMPT, "a", source="s", chosen_score=2.5)) == "scored"
    assert row_kind(make_row(PROMPT, source="s")) == "prompt_only"


def test_unsup_rows():
    row = make_unsup_row("Some plain text.", source="unsup/notes", meta={"rating": 0})
    assert list(row) == UNSUP_SCHEMA.names == ["id", "source", "text", "meta"]
    assert row_meta(row) == {"rating": 0}
    with pytest.raises(RowError):
        make_unsup_row("   ", source="s")


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_row([{"role": "user", "content": "broken \ud800 text"}], "a", "b", source="s"),
        lambda: make_row(PROMPT, "fine", "broken \udc80", source="s"),
        lambda: make_row(PROMPT, "fine", source="s", meta={"note": "\udc80"}),
        lambda: make_unsup_row("broken \ud800", source="s"),
    ],
)
def test_lone_surrogates_are_refused_with_a_reason_code(build):
    # JSON can spell "\ud800"; it is not text, has no UTF-8 and cannot be stored: a row-level defect, not a crash.
    with pytest.raises(RowError) as info:
        build()
    assert info.value.reason == "bad_unicode"
