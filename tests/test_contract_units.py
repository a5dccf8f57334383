"""Unit tests for the public functions of `prefdata.contract` and `prefdata.formats` not covered elsewhere; every
expected value is written out by hand."""

from __future__ import annotations

import hashlib
import json

import pytest

from prefdata.contract.errors import PrefdataError, RowError, ValidationFailed
from prefdata.contract.resources import resource_dir, sample_path, schema_path, templates_path
from prefdata.contract.row import (
    canonical_json,
    check_turns_pair,
    make_row,
    make_row_from_turns,
    make_unsup_row,
    prompt_group,
    row_id,
    short_hash,
    unsup_id,
)
from prefdata.formats import FORMATS, ROW_SCHEMAS, format_names, get_format, resolve_format
from prefdata.formats.alpaca import ALPACA_JOIN, parse_alpaca, parse_alpaca_preference
from prefdata.formats.common import (
    Format,
    is_listy,
    leftover_meta,
    maybe_json,
    optional_text,
    role_of,
    score,
    user_prompt,
)
from prefdata.formats.dschat import looks_rendered, strip_one_space
from prefdata.formats.mapping import check_mapping, mapping_format, parse_mapped_text

USER = [{"role": "user", "content": "Hi"}]


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- contract.errors ---------------------------------------------------------------------------------------------

def test_errors_print_as_one_line_with_where_and_field():
    assert str(PrefdataError("bad", file="a.jsonl", line=3, field="chosen")) == "a.jsonl:3: chosen: bad"
    assert str(PrefdataError("bad", file="a.parquet", index=4)) == "a.parquet[4]: bad"
    assert str(PrefdataError("bad")) == "bad" and PrefdataError.exit_code == 2 and ValidationFailed.exit_code == 1
    assert str(RowError("empty_reply", "the reply is empty", "chosen")) == "chosen: the reply is empty"
    assert str(RowError("tie", "no preference")) == "no preference"


# --- contract.resources -----------------------------------------------------------------------------------------

def test_bundled_resources_are_found():
    assert schema_path("reward").name == "reward.schema.json" and schema_path("reward").is_file()
    assert templates_path().name == "templates.json" and templates_path().is_file()
    assert sample_path().name == "sample_hh.jsonl" and sample_path().is_file()
    assert resource_dir("schemas") == schema_path("reward").parent
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        resource_dir("no-such-folder")


# --- contract.row ------------------------------------------------------------------------------------------------

def test_canonical_json_and_hashes_are_the_documented_spellings():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert short_hash([1, "x"]) == sha16('[1,"x"]')
    assert unsup_id("some text") == sha16('["unsup","some text"]')
    assert prompt_group(USER) == sha16('[{"content":"Hi","role":"user"}]')
    assert row_id(USER, "a", None) == sha16('[[{"content":"Hi","role":"user"}],"a",null]')
    with pytest.raises(ValueError):
        canonical_json(float("nan"))


def test_the_fast_pair_path_equals_make_row():
    roles, contents = ["user", "assistant", "user"], ["Q1", "A1", "Q2 \"quoted\"\n"]
    slow = make_row([{"role": r, "content": c} for r, c in zip(roles, contents)], "yes", "no", source="s")
    assert check_turns_pair(roles, contents, "yes", "no") == (slow["id"], slow["group"])
    assert make_row_from_turns(roles, contents, "yes", "no", source="s") == slow
    for args, reason in (((["user"], ["q"], "a", "a"), "identical_pair"), ((["user"], [" "], "a", "b"), "empty_prompt"),
                         ((["user"], ["q"], "a", " "), "empty_reply"), (([], [], "a", "b"), "empty_prompt")):
        with pytest.raises(RowError) as e:
            check_turns_pair(*args)
        assert e.value.reason == reason


def test_unsup_rows():
    row = make_unsup_row("Plain text.", source="s", meta={"k": 1})
    assert row == {"id": unsup_id("Plain text."), "source": "s", "text": "Plain text.", "meta": '{"k":1}'}
    with pytest.raises(RowError) as e:
        make_unsup_row(" \n", source="s")
    assert e.value.reason == "empty_text"


# --- formats -----------------------------------------------------------------------------------------------------

def test_format_registry_by_row_schema():
    assert ROW_SCHEMAS == ("preference", "unsup")
    assert format_names("unsup") == ["unsup-text", "mapping"]
    assert {"alpaca", "alpaca-preference", "sharegpt", "chatllama-reward"} <= set(format_names("preference"))
    assert all(FORMATS[name].row_schema == "preference" for name in format_names("preference")[:-1])
    assert get_format("hh") is FORMATS["trl-implicit"]
    with pytest.raises(PrefdataError, match="unknown kind 'rows'"):
        get_format("alpaca", "rows")
    with pytest.raises(PrefdataError, match="unknown format 'alpaca' for --kind unsup"):
        get_format("alpaca", "unsup")


def test_resolve_format_reads_csv_numbers_and_refuses_text_as_preference(tmp_path):
    table = tmp_path / "reward.csv"
    table.write_text("user_input,completion,score\nHi,Hello,4\n", encoding="utf-8")
    fmt = resolve_format(table)
    assert fmt.name == "chatllama-reward"
    assert fmt.parse({"user_input": "Hi", "completion": "Hello", "score": "4"}, "s")["chosen_score"] == 4.0
    jsonl = tmp_path / "reward.jsonl"
    jsonl.write_text(json.dumps({"user_input": "Hi", "completion": "Hello", "score": 4}) + "\n", encoding="utf-8")
    with pytest.raises(RowError):
        resolve_format(jsonl).parse({"user_input": "Hi", "completion": "Hello", "score": "4"}, "s")
    text = tmp_path / "notes.txt"
    text.write_text("some text\n", encoding="utf-8")
    with pytest.raises(PrefdataError, match="--kind unsup"):
        resolve_format(text)
    assert resolve_format(text, row_schema="unsup").name == "unsup-text"


def test_alpaca_prompt_history_and_input():
    record = {"instruction": "Translate", "input": "chat", "output": "cat", "system": "Be exact.",
              "history": [["Hello", "Hi!"]], "extra": 1}
    row = parse_alpaca(record, "s")
    assert row["prompt"] == [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Hello"},
                             {"role": "assistant", "content": "Hi!"},
                             {"role": "user", "content": "Translate" + ALPACA_JOIN + "chat"}]
    assert row["chosen"] == "cat" and json.loads(row["meta"]) == {"extra": 1}
    pair = parse_alpaca_preference({"instruction": "Say hi", "chosen": "Hi", "rejected": "Go"}, "s")
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ([{"role": "user", "content": "Say hi"}], "Hi", "Go")
    with pytest.raises(RowError) as e:
        parse_alpaca({"instruction": "x", "output": "y", "history": [["only one"]]}, "s")
    assert (e.value.reason, e.value.field) == ("schema_violation", "history[0]")


def test_common_field_helpers():
    assert maybe_json('[{"role": "user", "content": "x"}]') == [{"role": "user", "content": "x"}]
    assert maybe_json("[not json") == "[not json" and maybe_json("[1, 2]") == "[1, 2]"
    assert is_listy('[{"a": 1}]') and is_listy([]) and not is_listy("text")
    assert optional_text({}, "k") is None and optional_text({"k": "v"}, "k") == "v"
    assert [role_of(n, "f") for n in ("Human", "gpt", "system", "BOT")] == ["user", "assistant", "system", "assistant"]
    with pytest.raises(RowError) as e:
        role_of("narrator", "conversations[0].from")
    assert (e.value.reason, e.value.field) == ("bad_role", "conversations[0].from")
    assert user_prompt("q", "sys") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]
    assert leftover_meta({"a": 1, "b": 2}, {"a"}) == {"b": 2}
    assert score({"s": 2}, "s") == 2.0 and score({}, "s") is None
    with pytest.raises(RowError) as e:
        score({}, "s", required=True)
    assert e.value.reason == "missing_field"
    seen = []
    fmt = Format("f", "preference", frozenset({"n"}), lambda record, source: seen.append((record, source)), "",
                 number_fields=frozenset({"n"}), bool_fields=frozenset({"b"}))
    fmt.for_container("csv").parse({"n": "3", "t": "4", "b": "False"}, "s")
    assert seen == [({"n": 3, "t": "4", "b": False}, "s")]
    assert fmt.for_container("jsonl") is fmt and fmt.cells_from_text({"t": "4"}) == {"t": "4"}


def test_dschat_helpers():
    assert looks_rendered(" Human: hi Assistant:") and not looks_rendered("Hi there") and not looks_rendered(3)
    assert strip_one_space(" x") == "x" and strip_one_space("  x") == " x" and strip_one_space("x") == "x"


def test_mapping_helpers():
    assert check_mapping({"text": "body"}, "unsup") == {"text": "body"}
    with pytest.raises(PrefdataError, match="needs a column name"):
        check_mapping({"prompt": ""}, "preference")
    row = parse_mapped_text({"text": "body"}, {"body": "Hello world", "lang": "en"}, "s")
    assert row["text"] == "Hello world" and json.loads(row["meta"]) == {"lang": "en"}
    fmt = mapping_format({"prompt": "q", "chosen": "a", "chosen_score": "s"}, "preference")
    assert fmt.row_schema == "preference" and fmt.number_fields == frozenset({"s"})
