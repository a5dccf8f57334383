"""The ecosystem's /2 shapes (issue #11 items 7 and 8): unpaired labelled replies, multi-message continuations, tool
calls, Orca DPO CSV, and one detector shared by `import --format auto` and `validate --schema auto`.

Every fixture is written here with our own text; expected rows are spelled out by hand from the records.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from test_formats import SRC, assistant, parse, user

from prefdata.contract.errors import RowError
from prefdata.contract.row import canonical_json
from prefdata.formats import FORMATS, detect_format
from prefdata.jobs.importer import ParsedRow, import_files, iter_parsed
from prefdata.jobs.validate import validate_files
from prefdata.storage.dataset import iter_rows

TOPICS = ["tides", "bread", "volcanoes", "chess", "bees", "glaciers", "violins", "comets", "moss", "lighthouses"]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def kinds_of(rows) -> Counter:
    from prefdata.contract.row import row_kind

    return Counter(row_kind(row) for row in rows)


# --- fixtures in the ecosystem's shapes ---------------------------------------------------------------------------

def llamafactory_kto_records(n: int = 300) -> list[dict]:
    """LLaMA-Factory's KTO shape (`messages` of role/content + `label`), every second reply labelled false."""
    records = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        good = i % 2 == 0
        reply = (f"Here are three facts about {topic}, number {i}: they are old, they vary, they are studied."
                 if good else f"I refuse to talk about {topic} #{i}.")
        records.append({"messages": [user(f"Tell me about {topic} (question {i})."), assistant(reply)],
                        "label": good})
    return records


def orca_rows(n: int = 100) -> list[dict]:
    """Orca DPO pairs' CSV columns: system, question, chosen, rejected (some system cells empty)."""
    return [{"system": "" if i % 3 == 0 else "You are a careful assistant who answers in one sentence.",
             "question": f"What is one use of {TOPICS[i % len(TOPICS)]}? (case {i})",
             "chosen": f"One use of {TOPICS[i % len(TOPICS)]} is teaching patience, case {i}.",
             "rejected": f"{TOPICS[i % len(TOPICS)]} have no use at all (case {i})."} for i in range(n)]


def write_orca_csv(path: Path, n: int = 100) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["system", "question", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows(orca_rows(n))
    return path


CALL = {"name": "area", "arguments": {"shape": "square", "side": 7}}
TOOL_CALLS = [{"id": "call_1", "type": "function", "function": {"name": "area", "arguments": "{\"side\": 7}"}}]


def sharegpt_tool_record() -> dict:
    return {"conversations": [{"from": "human", "value": "What is the area of a square of side 7?"},
                              {"from": "function_call", "value": json.dumps(CALL)},
                              {"from": "observation", "value": "{\"area\": 49}"},
                              {"from": "gpt", "value": "The area is 49."}],
            "system": "Use tools when they help.",
            "tools": json.dumps([{"name": "area", "description": "Area of a shape"}])}


def openai_tool_record() -> dict:
    return {"messages": [user("Area of a square of side 7?"),
                         {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS},
                         {"role": "tool", "tool_call_id": "call_1", "content": "49"},
                         assistant("It is 49.")]}


# --- TRL unpaired -------------------------------------------------------------------------------------------------

def test_trl_unpaired_standard_rows_keep_their_label_on_the_right_side():
    good = parse("trl-unpaired", {"prompt": "The sky is", "completion": " blue.", "label": True})
    bad = parse("trl-unpaired", {"prompt": "The sky is", "completion": " green.", "label": False})
    assert good["prompt"] == [user("The sky is")]
    assert (good["chosen"], good["rejected"], good["label"]) == (" blue.", None, True)
    assert (bad["chosen"], bad["rejected"], bad["label"]) == (None, " green.", False)
    assert kinds_of([good, bad]) == {"unpaired": 2}


def test_trl_unpaired_conversational_rows():
    row = parse("trl-unpaired", {"prompt": [user("Hi")], "completion": [assistant("Hello."), ], "label": False})
    assert row["prompt"] == [user("Hi")] and row["rejected"] == "Hello." and row["chosen"] is None
    assert row["label"] is False


def test_trl_unpaired_is_detected_and_the_label_must_be_a_boolean(tmp_path):
    path = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "q", "completion": "a", "label": True}])
    assert detect_format(path) == "trl-unpaired"
    with pytest.raises(RowError) as e:
        parse("trl-unpaired", {"prompt": "q", "completion": "a", "label": "yes"})
    assert (e.value.reason, e.value.field) == ("bad_label", "label")


def test_a_label_spelled_as_text_is_read_from_csv_only(tmp_path):
    from_csv = FORMATS["trl-unpaired"].for_container("csv")
    assert from_csv.parse({"prompt": "q", "completion": "a", "label": "false"}, SRC)["label"] is False
    assert from_csv.parse({"prompt": "q", "completion": "a", "label": "True"}, SRC)["label"] is True
    path = tmp_path / "kto.csv"
    path.write_text("prompt,completion,label\nq1,a1,true\nq2,a2,false\n", encoding="utf-8")
    rows = [item.row for item in iter_parsed(path)]
    assert [(r["chosen"], r["rejected"], r["label"]) for r in rows] == [("a1", None, True), (None, "a2", False)]


# --- LLaMA-Factory ------------------------------------------------------------------------------------------------

def test_llamafactory_kto_file_imports_as_unpaired_rows_and_validates_clean(tmp_path):
    """Issue #11: 300 rows of `messages` + `label`, 150 false: none may become a demonstration."""
    records = llamafactory_kto_records()
    path = tmp_path / "kto_demo.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    out = tmp_path / "out"
    import_files([path], out, quiet=True)
    rows = [row for _, row in iter_rows(out)]
    assert len(rows) == 300 and kinds_of(rows) == {"unpaired": 300}
    by_prompt = {r["prompt"][0]["content"]: r for r in rows}
    for record in records:
        row = by_prompt[record["messages"][0]["content"]]
        side, other = ("chosen", "rejected") if record["label"] else ("rejected", "chosen")
        assert row[side] == record["messages"][1]["content"] and row[other] is None
        assert row["label"] is record["label"]
    notes: list[str] = []
    report = validate_files([path], out=None, note=notes.append)
    assert report.ok, report.violations
    assert report.kinds[str(path)] == {"unpaired": 300}
    assert any("300 unpaired" in note for note in notes), notes


def test_sharegpt_kto_tag_and_alpaca_kto_tag():
    row = parse("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
                             "kto_tag": False})
    assert (row["chosen"], row["rejected"], row["label"]) == (None, "a", False)
    row = parse("alpaca", {"instruction": "q", "input": "", "output": "a", "kto_tag": True})
    assert (row["chosen"], row["rejected"], row["label"]) == ("a", None, True)


def test_sharegpt_function_call_and_observation_become_tool_calls_and_results():
    record = sharegpt_tool_record()
    row = parse("sharegpt", record)
    call = [{"type": "function", "function": {"name": "area", "arguments": {"shape": "square", "side": 7}}}]
    assert row["prompt"] == [{"role": "system", "content": "Use tools when they help."},
                             user("What is the area of a square of side 7?")]
    assert row["chosen"] is None
    assert row["chosen_turns"] == [{"role": "assistant", "content": "", "tool_calls": canonical_json(call)},
                                   {"role": "tool", "content": "{\"area\": 49}"},
                                   assistant("The area is 49.")]
    assert json.loads(row["meta"]) == {"tools": record["tools"]}  # the tool descriptions are kept


def test_sharegpt_function_call_value_that_is_not_json_is_refused():
    record = sharegpt_tool_record()
    record["conversations"][1]["value"] = "area(7)"
    with pytest.raises(RowError) as e:
        parse("sharegpt", record)
    assert (e.value.reason, e.value.field) == ("bad_tool_call", "conversations[1].value")


def test_llamafactory_ranking_with_one_message_object_each_is_a_pair(tmp_path):
    record = {"conversations": [{"from": "human", "value": "Name a red fruit."}],
              "chosen": {"from": "gpt", "value": "A strawberry."}, "rejected": {"from": "gpt", "value": "A leek."}}
    path = write_jsonl(tmp_path / "dpo.jsonl", [record])
    assert detect_format(path) == "sharegpt-preference"
    row = parse("sharegpt-preference", record)
    assert (row["prompt"], row["chosen"], row["rejected"]) == ([user("Name a red fruit.")], "A strawberry.", "A leek.")


# --- OpenAI / TRL conversational with tools and multi-message continuations ---------------------------------------

def test_openai_messages_with_tool_calls_and_a_tool_result():
    row = parse("trl-messages", openai_tool_record())
    assert row["prompt"] == [user("Area of a square of side 7?")]
    assert row["chosen_turns"] == [{"role": "assistant", "content": "", "tool_calls": canonical_json(TOOL_CALLS)},
                                   {"role": "tool", "content": "49", "tool_call_id": "call_1"},
                                   assistant("It is 49.")]
    assert kinds_of([row]) == {"demonstration": 1}


def test_a_tool_result_inside_the_prompt_is_kept():
    record = openai_tool_record()
    record["messages"] += [user("And side 8?"), assistant("64.")]
    row = parse("trl-messages", record)
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert row["prompt"][2] == {"role": "tool", "content": "49", "tool_call_id": "call_1"}
    assert row["chosen"] == "64." and row["chosen_turns"] is None


def test_trl_conversational_preference_with_multi_message_continuations():
    chosen = [{"role": "assistant", "content": "", "tool_calls": TOOL_CALLS},
              {"role": "tool", "tool_call_id": "call_1", "content": "49"}, assistant("49 square units.")]
    row = parse("trl-conversational", {"prompt": [user("Area of side 7?")], "chosen": chosen,
                                       "rejected": [assistant("About 50.")]})
    assert row["chosen"] is None and [m["role"] for m in row["chosen_turns"]] == ["assistant", "tool", "assistant"]
    assert row["rejected"] == "About 50." and row["rejected_turns"] is None
    assert kinds_of([row]) == {"pair": 1}


def test_implicit_conversations_whose_continuations_have_several_messages():
    shared = [user("Area of side 7?")]
    chosen = [*shared, {"role": "assistant", "content": "", "tool_calls": TOOL_CALLS},
              {"role": "tool", "tool_call_id": "call_1", "content": "49"}, assistant("49.")]
    rejected = [*shared, assistant("No idea.")]
    row = parse("trl-conversational-implicit", {"chosen": chosen, "rejected": rejected})
    assert row["prompt"] == shared and row["rejected"] == "No idea."
    assert [m["role"] for m in row["chosen_turns"]] == ["assistant", "tool", "assistant"]
    with pytest.raises(RowError) as e:  # a user turn inside a continuation: the sides diverge before the reply
        parse("trl-conversational-implicit", {"chosen": [*shared, assistant("a"), user("more"), assistant("b")],
                                               "rejected": rejected})
    assert e.value.reason == "diverges_before_assistant"


# --- Orca DPO CSV -------------------------------------------------------------------------------------------------

def test_orca_dpo_csv_is_its_own_format_and_every_row_imports(tmp_path):
    path = write_orca_csv(tmp_path / "orca_dpo_pairs.csv")
    assert detect_format(path) == "orca"
    out = tmp_path / "out"
    import_files([path], out, quiet=True)
    rows = [row for _, row in iter_rows(out)]
    assert len(rows) == 100 and kinds_of(rows) == {"pair": 100}
    first, second = orca_rows(2)
    assert rows[0]["prompt"] == [user(first["question"])]  # an empty system cell adds no system message
    assert rows[1]["prompt"] == [{"role": "system", "content": second["system"]}, user(second["question"])]
    assert (rows[1]["chosen"], rows[1]["rejected"]) == (second["chosen"], second["rejected"])
    report = validate_files([path], out=None)
    assert report.ok and report.kinds[str(path)] == {"pair": 100}


# --- One detector -------------------------------------------------------------------------------------------------

def fixture_files(tmp_path: Path) -> dict[str, Path]:
    files = {"llamafactory-kto": tmp_path / "kto.json", "orca": write_orca_csv(tmp_path / "orca.csv")}
    files["llamafactory-kto"].write_text(json.dumps(llamafactory_kto_records(40)), encoding="utf-8")
    files["trl-unpaired"] = write_jsonl(tmp_path / "unpaired.jsonl", [
        {"prompt": f"Question {i}?", "completion": f"Answer {i}.", "label": i % 3 != 0} for i in range(30)])
    files["trl-unpaired-conversational"] = write_jsonl(tmp_path / "unpaired_conv.jsonl", [
        {"prompt": [user(f"Question {i}?")], "completion": [assistant(f"Answer {i}.")], "label": i % 2 == 0}
        for i in range(30)])
    files["sharegpt-tools"] = write_jsonl(tmp_path / "glaive.jsonl", [sharegpt_tool_record()] * 5)
    files["sharegpt-kto"] = write_jsonl(tmp_path / "sharegpt_kto.jsonl", [
        {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}],
         "kto_tag": i % 2 == 0} for i in range(10)])
    files["alpaca-kto"] = write_jsonl(tmp_path / "alpaca_kto.jsonl", [
        {"instruction": f"q{i}", "input": "", "output": f"a{i}", "kto_tag": i % 2 == 1} for i in range(10)])
    files["openai-tools"] = write_jsonl(tmp_path / "openai.jsonl", [openai_tool_record()] * 5)
    files["sharegpt-ranking"] = write_jsonl(tmp_path / "dpo.jsonl", [
        {"conversations": [{"from": "human", "value": f"q{i}"}], "chosen": {"from": "gpt", "value": f"good {i}"},
         "rejected": {"from": "gpt", "value": f"bad {i}"}} for i in range(10)])
    files["trl-conversational-turns"] = write_jsonl(tmp_path / "turns.jsonl", [
        {"prompt": [user(f"q{i}")], "chosen": [assistant("Let me check."), assistant(f"It is {i}.")],
         "rejected": [assistant("No.")]} for i in range(10)])
    return files


def test_import_and_validate_detect_the_same_format_and_agree_on_every_record(tmp_path):
    for name, path in fixture_files(tmp_path).items():
        fmt = detect_format(path)
        parsed = list(iter_parsed(path))
        assert all(isinstance(item, ParsedRow) for item in parsed), (name, [p for p in parsed if not hasattr(p, "row")])
        notes: list[str] = []
        report = validate_files([path], out=None, note=notes.append)
        assert report.ok, (name, report.violations)
        assert f"format {fmt}" in notes[0], (name, notes)
        assert report.kinds[str(path)] == kinds_of(item.row for item in parsed), name


def test_validate_reports_what_import_would_quarantine_with_the_same_reason(tmp_path):
    records = llamafactory_kto_records(20)
    records[3]["label"] = "maybe"
    records[7]["messages"] = [user("only a question")]  # no reply: a prompt, which KTO data cannot label
    path = write_jsonl(tmp_path / "kto.jsonl", records)
    rejected = {item.line: item.reason for item in iter_parsed(path) if not isinstance(item, ParsedRow)}
    printed: list[str] = []
    report = validate_files([path], out=printed.append)
    assert set(rejected) == {4, 8} and report.bad_records == 2
    assert report.reasons == Counter(rejected.values())


def test_every_preference_format_names_a_bundled_record_schema():
    from prefdata.jobs.validate_schema import RECORD_SCHEMAS

    for fmt in FORMATS.values():
        assert (fmt.schema in RECORD_SCHEMAS) if fmt.row_schema == "preference" else fmt.schema is None, fmt.name


def test_a_named_schema_parses_each_record_with_its_most_specific_format(tmp_path):
    """`--schema alpaca` covers alpaca and alpaca-preference records; each is read as import would read it."""
    path = write_jsonl(tmp_path / "mixed_alpaca.jsonl", [
        {"instruction": "q1", "output": "a1"}, {"instruction": "q2", "chosen": "good", "rejected": "bad"},
        {"instruction": "q3", "output": "a3", "kto_tag": False}])
    report = validate_files([path], schema="alpaca", out=None)
    assert report.ok and report.kinds[str(path)] == {"demonstration": 1, "pair": 1, "unpaired": 1}
    path = write_jsonl(tmp_path / "trl.jsonl", [{"prompt": "q"}, {"prompt": "q", "completion": "a"},
                                                {"prompt": "q", "completion": "a", "label": True}])
    report = validate_files([path], schema="prompt_completion", out=None)
    assert report.ok and report.kinds[str(path)] == {"prompt_only": 1, "demonstration": 1, "unpaired": 1}


def test_openai_legacy_function_call_and_function_role_and_empty_tool_calls():
    row = parse("trl-messages", {"messages": [
        user("Time in Lima?"),
        {"role": "assistant", "content": None, "function_call": {"name": "clock", "arguments": "{\"city\": \"Lima\"}"}},
        {"role": "function", "name": "clock", "content": "09:30"},
        {"role": "assistant", "content": "It is 09:30.", "tool_calls": []}]})  # an empty list is no call
    call = [{"type": "function", "function": {"name": "clock", "arguments": "{\"city\": \"Lima\"}"}}]
    assert row["chosen_turns"] == [{"role": "assistant", "content": "", "tool_calls": canonical_json(call)},
                                   {"role": "tool", "content": "09:30", "name": "clock"},
                                   assistant("It is 09:30.")]
    with pytest.raises(RowError) as e:
        parse("trl-messages", {"messages": [user("q"), {"role": "assistant", "content": "", "tool_calls": "f(1)"}]})
    assert (e.value.reason, e.value.field) == ("bad_tool_call", "messages[1].tool_calls")


def test_a_csv_whose_message_columns_are_json_text_validates_as_it_imports(tmp_path):
    """CSV can hold a list of messages only as JSON text; the parsers decode it, so the schema check does too."""
    def write(path: Path, first_role: str) -> Path:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["prompt", "chosen", "rejected"])
            for i in range(5):
                prompt = [{"role": first_role if i == 0 else "user", "content": f"Question {i}?"}]
                writer.writerow([json.dumps(prompt), json.dumps([assistant("Let me see."), assistant(f"It is {i}.")]),
                                 json.dumps([assistant("No.")])])
        return path

    path = write(tmp_path / "conversational.csv", "user")
    assert all(isinstance(item, ParsedRow) for item in iter_parsed(path))
    report = validate_files([path], out=None)
    assert report.ok, report.violations
    assert report.schemas[str(path)] == "preference_conversational" and report.kinds[str(path)] == {"pair": 5}
    bad = write(tmp_path / "bad.csv", "narrator")
    printed: list[str] = []
    report = validate_files([bad], out=printed.append)
    assert report.bad_records == 1 and report.reasons == {"bad_role": 1}
    assert printed == [f'{bad}:2: /prompt/0/role: "narrator" is not one of "system", "user", "assistant", "tool"']


def test_a_tool_call_shared_before_the_two_replies_starts_both_continuations():
    """LLaMA-Factory ranking with tools: the conversation ends with the call and its result; the replies differ after."""
    record = {"conversations": [{"from": "human", "value": "Area of side 7?"},
                                {"from": "function_call", "value": json.dumps(CALL)},
                                {"from": "observation", "value": "49"}],
              "chosen": {"from": "gpt", "value": "49."}, "rejected": {"from": "gpt", "value": "50."}}
    row = parse("sharegpt-preference", record)
    shared = [{"role": "assistant", "content": "", "tool_calls": canonical_json(
        [{"type": "function", "function": CALL}])}, {"role": "tool", "content": "49"}]
    assert row["prompt"] == [user("Area of side 7?")]
    assert row["chosen_turns"] == [*shared, assistant("49.")] and row["rejected_turns"] == [*shared, assistant("50.")]
    prompt = [user("Area of side 7?"), {"role": "assistant", "content": "", "tool_calls": TOOL_CALLS},
              {"role": "tool", "tool_call_id": "call_1", "content": "49"}]
    row = parse("trl-conversational", {"prompt": prompt, "chosen": [assistant("49.")], "rejected": "50."})
    assert row["prompt"] == [user("Area of side 7?")] and row["rejected_turns"][-1] == assistant("50.")


def test_after_split_no_labelled_reply_of_the_llamafactory_kto_file_is_sft_data(tmp_path):
    """Issue #11's report: the KTO demo imported as 300 demonstrations, so 150 undesirable replies reached sft_*."""
    from prefdata.jobs.split import split_datasets

    path = tmp_path / "kto_demo.json"
    path.write_text(json.dumps(llamafactory_kto_records()), encoding="utf-8")
    import_files([path], tmp_path / "raw", quiet=True)
    split_datasets([tmp_path / "raw"], tmp_path / "split", quiet=True)
    placed = Counter(split for split, _ in iter_rows(tmp_path / "split"))
    assert not [s for s in placed if s.startswith("sft")] and sum(placed.values()) == 300, placed
