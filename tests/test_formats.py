"""Every input format: its parser on hand-written records, and auto-detection (including refusals)."""

from __future__ import annotations

import json

import pytest

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.render import render
from prefdata.formats import FORMATS, detect_from_records, get_format, mapping_format
from prefdata.formats.dschat import parse_rendered_prompt
from prefdata.storage.readers import BadRecord, Record

SRC = "custom/test"


def parse(name: str, record: dict) -> dict:
    return FORMATS[name].parse(record, SRC)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def detect(*values, kind: str = "preference") -> str:
    records = [Record("f.jsonl", i, i + 1, v) for i, v in enumerate(values)]
    return detect_from_records(records, "f.jsonl", kind).name


# --- ChatLLaMA ---------------------------------------------------------------------------------------------------

def test_chatllama_actor_is_a_demonstration():
    row = parse("chatllama-actor", {"user_input": "Name a prime.", "completion": "Seven."})
    assert row["prompt"] == [user("Name a prime.")]
    assert (row["chosen"], row["rejected"], row["chosen_score"]) == ("Seven.", None, None)


def test_chatllama_reward_is_a_scored_row():
    row = parse("chatllama-reward", {"user_input": "Name a prime.", "completion": "Nine.", "score": 1})
    assert row["chosen"] == "Nine." and row["chosen_score"] == 1.0 and row["rejected"] is None


def test_chatllama_reward_needs_its_score():
    with pytest.raises(RowError) as e:
        parse("chatllama-reward", {"user_input": "q", "completion": "a", "score": None})
    assert (e.value.reason, e.value.field) == ("missing_field", "score")


def test_chatllama_rlhf_is_prompt_only():
    row = parse("chatllama-rlhf", {"user_input": "Write a limerick."})
    assert row["prompt"] == [user("Write a limerick.")] and row["chosen"] is None


def test_scores_written_as_text_are_read_from_csv_only_and_garbage_is_refused():
    """CSV has only text, so a CSV cell that spells a number is one; in JSON a score must be a number (as make_row and
    `prefdata validate` require)."""
    from_csv = FORMATS["chatllama-reward"].for_container("csv")
    assert from_csv.parse({"user_input": "q", "completion": "a", "score": " 2.5 "}, "s")["chosen_score"] == 2.5
    for value in (" 2.5 ", "high"):
        with pytest.raises(RowError) as e:
            parse("chatllama-reward", {"user_input": "q", "completion": "a", "score": value})
        assert (e.value.reason, e.value.field) == ("schema_violation", "score")
    with pytest.raises(RowError) as e:
        from_csv.parse({"user_input": "q", "completion": "a", "score": "high"}, "s")
    assert (e.value.reason, e.value.field) == ("schema_violation", "score")


# --- DeepSpeed-Chat ----------------------------------------------------------------------------------------------

def test_dschat_single_line_rendering():
    row = parse("dschat", {"prompt": " Human: Is tea acidic? Assistant:", "chosen": " Mildly.", "rejected": " No idea."})
    assert row["prompt"] == [user("Is tea acidic?")]
    assert (row["chosen"], row["rejected"]) == ("Mildly.", "No idea.")


def test_dschat_multi_turn_hh_style_prompt():
    prompt = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Recommend a book.\n\nAssistant:"
    row = parse("dschat", {"prompt": prompt, "chosen": " Try a classic.", "rejected": " No."})
    assert row["prompt"] == [user("Hi there"), assistant("Hello! How can I help?"), user("Recommend a book.")]


def test_dschat_reads_back_what_render_writes():
    prompt = [{"role": "system", "content": "Be brief."}, user("a"), assistant("b"), user("c: Human: d")]
    assert parse_rendered_prompt(render(prompt, template="dschat")) == prompt


def test_dschat_prompt_must_end_with_assistant_marker():
    with pytest.raises(RowError) as e:
        parse_rendered_prompt("Human: hello")
    assert e.value.reason == "malformed_markers"


# --- TRL ---------------------------------------------------------------------------------------------------------

def test_trl_standard_explicit_prompt():
    row = parse("trl-standard", {"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "id": 7})
    assert row["prompt"] == [user("The sky is")] and (row["chosen"], row["rejected"]) == (" blue.", " green.")
    assert json.loads(row["meta"]) == {"id": 7}  # keys the format does not read are kept


def test_trl_implicit_prompt_hh_text():
    chosen = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 6."
    rejected = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 7."
    row = parse("trl-implicit", {"chosen": chosen, "rejected": rejected})
    assert row["prompt"] == [user("What is 2+2?"), assistant("4."), user("And 3+3?")]
    assert (row["chosen"], row["rejected"]) == ("6.", "7.")


def test_trl_implicit_keeps_a_fake_turn_inside_a_reply_and_refuses_loose_markers():
    """Real HH-RLHF replies sometimes invent turns of their own ("…\\n\\nAssistant: …"); that text is the reply.
    A marker without its blank line ("Sure. Human: …") is the known defect, refused as malformed_markers."""
    prompt = "\n\nHuman: Give me a key."
    row = parse("trl-implicit", {"chosen": prompt + "\n\nAssistant: Here:\n\nAssistant: ABC-123",
                                 "rejected": prompt + "\n\nAssistant: No.\n\nHuman: Why?\n\nAssistant: Policy."})
    assert (row["chosen"], row["rejected"]) == ("Here:\n\nAssistant: ABC-123", "No.\n\nHuman: Why?\n\nAssistant: Policy.")
    with pytest.raises(RowError) as e:
        parse("trl-implicit", {"chosen": prompt + "\n\nAssistant: Sure. Human: thanks",
                               "rejected": prompt + "\n\nAssistant: No."})
    assert (e.value.reason, e.value.field) == ("malformed_markers", "chosen")


def test_trl_conversational_explicit_prompt():
    record = {"prompt": [{"role": "user", "content": "What colour is the sky?"}],
              "chosen": [{"role": "assistant", "content": "Blue."}],
              "rejected": [{"role": "assistant", "content": "Green."}]}
    row = parse("trl-conversational", record)
    assert row["prompt"] == [user("What colour is the sky?")] and (row["chosen"], row["rejected"]) == ("Blue.", "Green.")


def test_trl_conversational_reply_is_a_continuation_of_assistant_and_tool_messages():
    """/2: a reply may be several messages (tool calls, results, the answer), but never a user turn."""
    record = {"prompt": [user("q")], "chosen": [user("not me")], "rejected": [assistant("b")]}
    with pytest.raises(RowError) as e:
        parse("trl-conversational", record)
    assert (e.value.reason, e.value.field) == ("bad_continuation", "chosen[0].role")


def test_trl_conversational_implicit_prompt():
    shared = [{"role": "system", "content": "Be kind."}, user("Hi"), assistant("Hello"), user("Joke?")]
    row = parse("trl-conversational-implicit",
                {"chosen": [*shared, assistant("Why did the chicken…")], "rejected": [*shared, assistant("No.")]})
    assert row["prompt"] == shared and (row["chosen"], row["rejected"]) == ("Why did the chicken…", "No.")


def test_trl_conversational_implicit_refuses_early_divergence():
    with pytest.raises(RowError) as e:
        parse("trl-conversational-implicit", {"chosen": [user("a"), assistant("b")],
                                              "rejected": [user("x"), assistant("b")]})
    assert e.value.reason == "diverges_before_assistant"


def test_trl_prompt_only_prompt_completion_and_messages():
    assert parse("trl-prompt-only", {"prompt": "Tell me a story."})["chosen"] is None
    conversational = parse("trl-prompt-only", {"prompt": [user("Tell me a story.")]})
    assert conversational["prompt"] == [user("Tell me a story.")]
    row = parse("trl-prompt-completion", {"prompt": "2+2=", "completion": "4"})
    assert (row["chosen"], row["rejected"]) == ("4", None)
    row = parse("trl-messages", {"messages": [user("Hi"), assistant("Hello")]})
    assert row["prompt"] == [user("Hi")] and row["chosen"] == "Hello"
    assert parse("trl-messages", {"messages": [user("Hi")]})["chosen"] is None


# --- ShareGPT and Alpaca -----------------------------------------------------------------------------------------

def test_sharegpt_preference_with_objects_and_a_system_turn():
    record = {"conversations": [{"from": "system", "value": "You are terse."}, {"from": "human", "value": "Hi"}],
              "chosen": {"from": "gpt", "value": "Hello."}, "rejected": {"from": "gpt", "value": "What?"}}
    row = parse("sharegpt-preference", record)
    assert row["prompt"] == [{"role": "system", "content": "You are terse."}, user("Hi")]
    assert (row["chosen"], row["rejected"]) == ("Hello.", "What?")


def test_sharegpt_preference_with_strings_and_top_level_system():
    record = {"system": "Answer in French.", "conversations": [{"from": "human", "value": "Thanks"}],
              "chosen": "Merci.", "rejected": "Thanks."}
    row = parse("sharegpt-preference", record)
    assert row["prompt"][0] == {"role": "system", "content": "Answer in French."}
    assert (row["chosen"], row["rejected"]) == ("Merci.", "Thanks.")


def test_sharegpt_conversation_ends_in_a_demonstration():
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                                {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "See you"}]}
    row = parse("sharegpt", record)
    assert row["prompt"] == [user("Hi"), assistant("Hello"), user("Bye")] and row["chosen"] == "See you"


def test_sharegpt_unknown_speaker_is_a_bad_role():
    with pytest.raises(RowError) as e:
        parse("sharegpt", {"conversations": [{"from": "narrator", "value": "Once"}]})
    assert (e.value.reason, e.value.field) == ("bad_role", "conversations[0].from")


def test_alpaca_joins_instruction_and_input():
    row = parse("alpaca", {"instruction": "Translate to German.", "input": "Good morning", "output": "Guten Morgen"})
    assert row["prompt"] == [user("Translate to German.\n\nGood morning")] and row["chosen"] == "Guten Morgen"
    row = parse("alpaca", {"instruction": "Say hi.", "input": "", "output": "Hi"})
    assert row["prompt"] == [user("Say hi.")]


def test_alpaca_history_and_preference():
    row = parse("alpaca-preference", {"instruction": "And Spanish?", "history": [["French for hi?", "Salut."]],
                                      "chosen": "Hola.", "rejected": "Ciao."})
    assert row["prompt"] == [user("French for hi?"), assistant("Salut."), user("And Spanish?")]
    assert (row["chosen"], row["rejected"]) == ("Hola.", "Ciao.")


# --- Field checks shared by all formats --------------------------------------------------------------------------

def test_missing_key_and_wrong_type_name_the_field():
    with pytest.raises(RowError) as e:
        parse("trl-standard", {"prompt": "q", "chosen": "a"})
    assert (e.value.reason, e.value.field) == ("missing_field", "rejected")
    with pytest.raises(RowError) as e:
        parse("alpaca", {"instruction": 42, "output": "a"})
    assert (e.value.reason, e.value.field, e.value.message) == ("schema_violation", "instruction",
                                                                "is a number, not a string")


def test_list_columns_stored_as_json_text_are_decoded():
    """CSV has no lists: conversational columns arrive as JSON text."""
    record = {"prompt": json.dumps([user("Hi")]), "chosen": json.dumps([assistant("Hello")]),
              "rejected": json.dumps([assistant("Go away")])}
    assert detect(record) == "trl-conversational"
    row = parse("trl-conversational", record)
    assert row["prompt"] == [user("Hi")] and row["chosen"] == "Hello"


def test_non_ascii_text_is_kept_unchanged():
    text = "请用一句话解释光合作用。🌱 Ünïcödé"
    row = parse("trl-standard", {"prompt": text, "chosen": "植物利用光能制造养分。", "rejected": "不知道。"})
    assert row["prompt"][0]["content"] == text and row["chosen"] == "植物利用光能制造养分。"


# --- Column mapping ----------------------------------------------------------------------------------------------

def test_mapping_reads_any_columns():
    fmt = mapping_format({"prompt": "question", "chosen": "good", "rejected": "bad", "chosen_score": "s1",
                          "group": "thread"}, "preference").for_container("csv")  # CSV: the text "3" is a number
    row = fmt.parse({"question": "Why?", "good": "Because.", "bad": "No.", "s1": "3", "thread": 12, "x": 1}, SRC)
    assert row["prompt"] == [user("Why?")] and (row["chosen"], row["rejected"]) == ("Because.", "No.")
    assert row["chosen_score"] == 3.0 and row["group"] == "12" and json.loads(row["meta"]) == {"x": 1}


def test_mapping_refuses_unknown_fields_and_missing_prompt():
    with pytest.raises(PrefdataError, match="unknown field"):
        mapping_format({"prompt": "q", "answer": "a"}, "preference")
    with pytest.raises(PrefdataError, match="must name the prompt column"):
        mapping_format({"chosen": "a"}, "preference")


def test_mapping_column_missing_from_a_record_is_a_row_error():
    fmt = mapping_format({"prompt": "q", "chosen": "good"}, "preference")
    with pytest.raises(RowError) as e:
        fmt.parse({"q": "hi"}, SRC)
    assert (e.value.reason, e.value.field) == ("missing_field", "good")


def test_mapping_cannot_be_combined_with_a_named_format():
    with pytest.raises(PrefdataError, match="cannot be combined"):
        get_format("alpaca", "preference", {"prompt": "q"})


# --- Detection ---------------------------------------------------------------------------------------------------

# (record, detected format, what the row must hold: prompt, chosen, rejected, chosen_score), written out by hand.
Q = [user("q")]
DETECTION_CASES = [
    ({"user_input": "q", "completion": "a"}, "chatllama-actor", (Q, "a", None, None)),
    ({"user_input": "q", "completion": "a", "score": 0.5}, "chatllama-reward", (Q, "a", None, 0.5)),
    ({"user_input": "q"}, "chatllama-rlhf", (Q, None, None, None)),
    ({"prompt": "Human: q Assistant:", "chosen": "a", "rejected": "b"}, "dschat", (Q, "a", "b", None)),
    ({"prompt": "q", "chosen": "a", "rejected": "b"}, "trl-standard", (Q, "a", "b", None)),
    ({"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}, "trl-conversational",
     (Q, "a", "b", None)),
    ({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}, "trl-implicit",
     (Q, "a", "b", None)),
    ({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("b")]}, "trl-conversational-implicit",
     (Q, "a", "b", None)),
    ({"prompt": "q"}, "trl-prompt-only", (Q, None, None, None)),
    ({"prompt": "q", "completion": "a"}, "trl-prompt-completion", (Q, "a", None, None)),
    ({"messages": [user("q"), assistant("a")]}, "trl-messages", (Q, "a", None, None)),
    ({"conversations": [{"from": "human", "value": "q"}]}, "sharegpt", (Q, None, None, None)),
    ({"conversations": [{"from": "human", "value": "q"}], "chosen": "a", "rejected": "b"}, "sharegpt-preference",
     (Q, "a", "b", None)),
    ({"instruction": "q", "input": "", "output": "a"}, "alpaca", (Q, "a", None, None)),
    ({"instruction": "q", "chosen": "a", "rejected": "b"}, "alpaca-preference", (Q, "a", "b", None)),
]


@pytest.mark.parametrize(("record", "expected", "row_fields"), DETECTION_CASES)
def test_detection_picks_the_most_specific_format(record, expected, row_fields):
    assert detect(record) == expected
    row = parse(expected, record)  # and the detected format reads it as meant
    assert (row["prompt"], row["chosen"], row["rejected"], row["chosen_score"]) == row_fields


def test_unpaired_kto_rows_are_not_mistaken_for_demonstrations():
    """/2: `{prompt, completion, label}` is TRL's unpaired format; the undesirable reply sits in `rejected`."""
    assert detect({"prompt": "q", "completion": "a", "label": False}) == "trl-unpaired"
    row = parse("trl-prompt-completion", {"prompt": "q", "completion": "a", "label": False})  # named by hand too
    assert (row["chosen"], row["rejected"], row["label"]) == (None, "a", False)


def test_detection_of_unsup_text():
    assert detect({"text": "Once upon a time."}, kind="unsup") == "unsup-text"


def test_ambiguous_records_are_refused_listing_the_candidates():
    record = {"conversations": [{"from": "human", "value": "q"}], "instruction": "q", "output": "a"}
    with pytest.raises(PrefdataError) as e:
        detect(record)
    assert "ambiguous" in str(e.value) and "sharegpt" in str(e.value) and "alpaca" in str(e.value)
    assert str(e.value).startswith("f.jsonl:1: ")


def test_unknown_keys_are_refused_with_a_hint():
    with pytest.raises(PrefdataError) as e:
        detect({"transcript": "...", "rating": 3})
    assert "rating, transcript" in str(e.value) and "--map" in str(e.value)


def test_records_that_disagree_fit_no_single_format():
    with pytest.raises(PrefdataError, match="have the keys of dschat, trl-standard, trl-conversational but"):
        detect({"prompt": "Human: q Assistant:", "chosen": "a", "rejected": "b"},
               {"prompt": "plain q", "chosen": "a", "rejected": "b"})


def test_detection_skips_bad_records_and_reports_when_only_bad_ones_exist():
    bad = BadRecord("f.jsonl", 0, 1, "bad_json", "invalid JSON", "{")
    good = Record("f.jsonl", 1, 2, {"user_input": "q"})
    assert detect_from_records([bad, good], "f.jsonl").name == "chatllama-rlhf"
    with pytest.raises(PrefdataError) as e:
        detect_from_records([bad], "f.jsonl")
    assert str(e.value).startswith("f.jsonl:1: ") and "bad_json" in str(e.value)


def test_empty_values_in_the_first_records_do_not_derail_detection():
    """A CSV's empty cell is null; detection judges values only where they are present."""
    assert detect({"prompt": None, "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "b"}) \
        == "trl-standard"
