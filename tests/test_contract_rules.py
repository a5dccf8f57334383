"""One rule set: a hostile row gets the same verdict and reason code from `make_row`, from `prefdata import`, and from
`prefdata validate` on a data file and on a dataset directory."""

from __future__ import annotations

import json
import math

import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import make_row, row_id
from prefdata.contract.rules import (
    REASONS,
    check_message,
    check_pair,
    check_prompt,
    check_reply,
    check_score,
    check_text_reply,
    check_turns,
    check_unsup_text,
    field_pointer,
    number_from_text,
    stored_row_errors,
    type_name,
)
from prefdata.jobs.importer import import_files
from prefdata.jobs.validate import validate_directory, validate_files
from prefdata.storage.dataset import DatasetWriter

USER = {"role": "user", "content": "Is the sea salty?"}

# (case, prompt, chosen, rejected, chosen_score, reason make_row gives: None for a valid row)
HOSTILE = [
    ("valid pair", [USER], "Yes.", "No.", None, None),
    ("valid pair with an integer score", [USER], "Yes.", "No.", 7, None),
    ("NaN score", [USER], "Yes.", "No.", math.nan, "schema_violation"),
    ("infinite score", [USER], "Yes.", "No.", -math.inf, "schema_violation"),
    ("score as text", [USER], "Yes.", "No.", "7", "schema_violation"),
    ("boolean score", [USER], "Yes.", "No.", True, "schema_violation"),
    ("empty reply", [USER], " \n", "No.", None, "empty_reply"),
    ("empty rejected reply", [USER], "Yes.", "", None, "empty_reply"),
    ("unknown role", [{"role": "narrator", "content": "Once"}, USER], "Yes.", "No.", None, "bad_role"),
    ("content not text", [{"role": "user", "content": 5}], "Yes.", "No.", None, "schema_violation"),
    ("no messages", [], "Yes.", "No.", None, "empty_prompt"),
    ("blank user turns", [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "  "}], "Yes.",
     "No.", None, "empty_prompt"),
    ("prompt ends with the assistant", [USER, {"role": "assistant", "content": "Hm."}], "Yes.", "No.", None,
     "prompt_not_ending_with_user"),
    ("identical replies", [USER], "Same.", "Same.", None, "identical_pair"),
    ("rejected without chosen", [USER], None, "No.", None, "missing_field"),
]
IDS = [case[0] for case in HOSTILE]
# An Arrow directory cannot hold a text or boolean score, or message content that is not text: those cases exist only
# in files, so the directory check takes the others.
STORABLE = [case for case in HOSTILE if not isinstance(case[4], (bool, str)) and case[0] != "content not text"]


def make_row_reason(prompt, chosen, rejected, score) -> str | None:
    try:
        make_row(prompt, chosen, rejected, source="test", chosen_score=score)
    except RowError as e:
        return e.reason
    return None


def as_record(prompt, chosen, rejected, score) -> dict:
    """The row as a TRL conversational record with an explicit prompt, the replies as assistant messages."""
    record = {"prompt": prompt, "chosen": None if chosen is None else [{"role": "assistant", "content": chosen}],
              "rejected": [{"role": "assistant", "content": rejected}]}
    if score is not None:
        record["chosen_score"] = score
    return record


@pytest.mark.parametrize(("case", "prompt", "chosen", "rejected", "score", "reason"), HOSTILE, ids=IDS)
def test_make_row_import_and_validate_of_a_file_agree(tmp_path, case, prompt, chosen, rejected, score, reason):
    assert make_row_reason(prompt, chosen, rejected, score) == reason
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(as_record(prompt, chosen, rejected, score)) + "\n", encoding="utf-8")

    report = validate_files([path], schema="preference_conversational", out=None)
    assert report.ok == (reason is None), report.violations
    assert set(report.reasons) == ({reason} if reason else set()), report.violations

    manifest = import_files([path], tmp_path / "imported", format="trl-conversational", quiet=True)
    assert manifest["counts"]["quarantined_by_reason"] == ({reason: 1} if reason else {})


@pytest.mark.parametrize(("case", "prompt", "chosen", "rejected", "score", "reason"), STORABLE,
                         ids=[case[0] for case in STORABLE])
def test_make_row_and_validate_of_a_directory_agree(tmp_path, case, prompt, chosen, rejected, score, reason):
    row = {"id": row_id(prompt, chosen, rejected), "source": "test", "group": "g", "prompt": prompt, "chosen": chosen,
           "rejected": rejected, "chosen_score": score, "rejected_score": None, "meta": "{}"}
    with DatasetWriter(tmp_path / "ds", command="test") as writer:
        writer.count_in()
        writer.write(row, "train")
    report = validate_directory(tmp_path / "ds", out=None)
    assert report.ok == (reason is None), report.violations
    assert set(report.reasons) == ({reason} if reason else set()), report.violations
    assert all(str(v).endswith(f"({reason})") for v in report.violations)


def test_validate_reports_every_broken_rule_of_a_stored_row():
    row = {"id": "", "source": "s", "group": "g", "prompt": [{"role": "bot", "content": "hi"}], "chosen": "",
           "rejected": " ", "chosen_score": math.inf, "rejected_score": None, "meta": "[]"}
    reasons = [(e.reason, e.field) for e in stored_row_errors(row)]
    assert reasons == [("missing_field", "id"), ("bad_role", "prompt[0].role"), ("empty_reply", "chosen"),
                       ("empty_reply", "rejected"), ("schema_violation", "chosen_score"), ("bad_meta", "meta")]


def test_stored_row_errors_checks_the_content_hash_and_unsup_text():
    row = make_row([USER], "Yes.", "No.", source="s")
    assert stored_row_errors(row, content_id=lambda r: row["id"]) == []
    edited = stored_row_errors({**row, "chosen": "Yes!"}, content_id=lambda r: row_id(r["prompt"], r["chosen"],
                                                                                        r["rejected"]))
    assert [e.reason for e in edited] == ["id_mismatch"]
    assert [e.reason for e in stored_row_errors({"id": "x", "source": "s", "text": " "}, unsup=True)] == ["empty_text"]


def test_each_rule_raises_its_reason_code():
    cases = [
        (lambda: check_message("hi", 0), "schema_violation", "prompt[0]"),
        (lambda: check_message({"role": "bot", "content": "x"}, 2), "bad_role", "prompt[2].role"),
        (lambda: check_turns([], []), "empty_prompt", "prompt"),
        (lambda: check_turns(["user", "assistant"], ["q", "a"]), "prompt_not_ending_with_user", "prompt"),
        (lambda: check_prompt("not a list"), "empty_prompt", "prompt"),
        (lambda: check_text_reply("\t", "chosen"), "empty_reply", "chosen"),
        (lambda: check_reply(3, "rejected"), "schema_violation", "rejected"),
        (lambda: check_pair(None, "b"), "missing_field", "chosen"),
        (lambda: check_pair("a", "a"), "identical_pair", "rejected"),
        (lambda: check_score("1", "chosen_score"), "schema_violation", "chosen_score"),
        (lambda: check_unsup_text(None), "schema_violation", "text"),
        (lambda: check_unsup_text(""), "empty_text", "text"),
    ]
    for call, reason, field in cases:
        with pytest.raises(RowError) as e:
            call()
        assert (e.value.reason, e.value.field) == (reason, field)
        assert e.value.reason in REASONS


def test_valid_values_pass_the_rules_unchanged():
    assert check_prompt([USER]) == [USER]
    check_turns(["system", "user"], ["", "q"])
    assert check_reply(None, "chosen") is None and check_reply("ok", "chosen") == "ok"
    check_pair("a", None)
    check_pair("a", "b")
    assert check_score(None, "s") is None and check_score(3, "s") == 3.0 and check_score(-0.5, "s") == -0.5


def test_number_from_text_reads_only_plain_decimal_numbers():
    assert [number_from_text(v) for v in (" 4 ", "-2.5", "1e3", ".5", "+7")] == [4, -2.5, 1000.0, 0.5, 7]
    for text in ("nan", "inf", "1_000", "four", "", "0x10", 3):
        assert number_from_text(text) == text


def test_field_pointer_and_type_name():
    assert field_pointer("prompt[0].role") == "/prompt/0/role"
    assert field_pointer("history[1][0]") == "/history/1/0"
    assert field_pointer("chosen") == "/chosen" and field_pointer(None) is None
    assert [type_name(v) for v in (None, True, 1, 1.5, "s", [], {})] == ["null", "boolean", "number", "number",
                                                                         "string", "list", "object"]
