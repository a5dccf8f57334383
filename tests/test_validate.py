"""`prefdata validate`: the JSON Schemas, file validation (streaming, pointers, limits, exit codes) and dataset checks."""

from __future__ import annotations

import gzip
import hashlib
import json
import tracemalloc
from collections import Counter

import pyarrow as pa
import pytest
from support import hh_rows

from prefdata.cli import main
from prefdata.contract.errors import RowError
from prefdata.contract.resources import templates_path
from prefdata.contract.row import UNSUP_SCHEMA_ID, make_row, make_unsup_row, row_id
from prefdata.formats import FORMATS
from prefdata.jobs.validate import (
    RECORD_SCHEMAS,
    SCHEMA_NAMES,
    compiled_validator,
    load_schema,
    validate_directory,
    validate_files,
)
from prefdata.storage.dataset import MANIFEST, DatasetWriter, file_sha256
from prefdata.storage.readers import iter_records

GOOD = {
    "actor": {"user_input": "Name three kinds of cloud.", "completion": "Cirrus, cumulus and stratus."},
    "reward": {"user_input": "What is 7 times 6?", "completion": "It is 42.", "score": 4.5},
    "rlhf": {"user_input": "Suggest a title for a story about a lighthouse keeper."},
    "preference": {"prompt": "Translate 'good morning' into French.", "chosen": "Bonjour.", "rejected": "Bonsoir."},
    "preference_conversational": {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好，今天天气怎么样？"}],
        "chosen": [{"role": "assistant", "content": "今天晴朗。"}],
        "rejected": [{"role": "assistant", "content": "I cannot say."}],
    },
    "preference_implicit": {
        "chosen": "\n\nHuman: Is basil a herb?\n\nAssistant: Yes, a leafy one.",
        "rejected": "\n\nHuman: Is basil a herb?\n\nAssistant: No.",
    },
}

# (schema, record, pointer, words in the message): each rule of each schema can fail.
BAD = [
    ("actor", {"user_input": "Hello there", "completion": 17}, "/completion", "17 is a number, expected a string"),
    ("actor", {"user_input": "Hello there"}, "/completion", "required key is missing"),
    ("actor", {"user_input": "  \n", "completion": "ok"}, "/user_input", "empty or only white space"),
    ("reward", {"user_input": "Add 2 and 2", "completion": "4", "score": "high"}, "/score",
     '"high" is a string, expected a number'),
    ("reward", {"user_input": "Add 2 and 2", "completion": "4", "score": True}, "/score", "is a boolean"),
    ("reward", {"user_input": "Add 2 and 2", "completion": "4"}, "/score", "required key is missing"),
    ("rlhf", {"user_input": ["a list", "of prompts"]}, "/user_input", "is an array, expected a string"),
    ("rlhf", {"prompt": "wrong key"}, "/user_input", "required key is missing"),
    ("preference", {"prompt": "Pick a colour", "chosen": "Blue", "rejected": None}, "/rejected", "null"),
    ("preference", {"prompt": 3.5, "chosen": "Blue", "rejected": "Red"}, "/prompt", "expected a string"),
    ("preference_conversational", {**GOOD["preference_conversational"],
                                   "prompt": [{"role": "bot", "content": "hi"}]}, "/prompt/0/role", '"bot" is not one'),
    ("preference_conversational", {**GOOD["preference_conversational"],
                                   "prompt": [{"role": "user", "content": 5}]}, "/prompt/0/content", "expected a string"),
    ("preference_conversational", {**GOOD["preference_conversational"],
                                   "chosen": [{"role": "user", "content": "x"}]}, "/chosen/0/role", 'must be "assistant"'),
    ("preference_conversational", {**GOOD["preference_conversational"], "rejected": []}, "/rejected",
     "is an empty array"),
    ("preference_conversational", {**GOOD["preference_conversational"], "prompt": []}, "/prompt", "is an empty array"),
    ("preference_conversational", {**GOOD["preference_conversational"],
                                   "chosen": [{"role": "assistant"}]}, "/chosen/0/content", "required key is missing"),
    ("preference_implicit", {"chosen": "  ", "rejected": "\n\nHuman: hi\n\nAssistant: yo"}, "/chosen", ""),
    ("preference_implicit", {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": 7}, "/rejected", ""),
    ("preference_implicit", {"chosen": "\n\nHuman: hi\n\nAssistant: yo"}, "/rejected", "required key is missing"),
]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`prefdata ARGS` as the console script runs it: (exit status, stdout, stderr)."""
    try:
        main(["validate", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
    return str(path)


# ----------------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_bundled_schema_is_a_valid_draft_2020_12_schema(name):
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_a_whole_json_array_file_is_checked_by_the_schema_itself(name):
    """The record schemas describe a ChatLLaMA-style file (a JSON array), so editors can use them unchanged."""
    whole = compiled_validator(name)
    assert whole.is_valid([GOOD[name], GOOD[name]])
    assert not whole.is_valid(GOOD[name])  # one record is not a file
    assert not whole.is_valid([GOOD[name], {}])


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_good_records_pass_and_auto_detects_their_schema(tmp_path, name):
    path = write_jsonl(tmp_path / f"{name}.jsonl", [GOOD[name]] * 3)
    report = validate_files([path], schema=name, out=None)
    assert report.ok and report.records == 3
    notes = []
    report = validate_files([path], out=None, note=notes.append)
    assert report.ok and report.schemas == {path: name}
    assert f"schema {name}" in notes[0]


@pytest.mark.parametrize(("name", "record", "pointer", "words"), BAD)
def test_bad_records_are_reported_with_a_json_pointer(tmp_path, name, record, pointer, words):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[name], record])
    printed = []
    report = validate_files([path], schema=name, out=printed.append)
    assert not report.ok and report.bad_records == 1
    assert any(line.startswith(f"{path}:2: {pointer}: ") and words in line for line in printed), printed


def test_templates_schema_requires_the_chatllama_keys_and_string_values():
    validator = compiled_validator("templates")
    good = {"actor": "Answer: {user_input}", "reward": "Score {completion}", "rlhf": "Write {count} requests",
            "judge_pairwise": "A or B? {response_a} {response_b}"}
    assert validator.is_valid(good)
    assert not validator.is_valid({k: v for k, v in good.items() if k != "rlhf"})
    assert not validator.is_valid({**good, "reward": 5})
    assert not validator.is_valid({**good, "judge_pairwise": ["not", "a", "string"]})
    assert not validator.is_valid([good])


def test_the_real_templates_file_validates(tmp_path, capsys):
    """The bundled templates/templates.json when it exists; a ChatLLaMA-shaped one of our own otherwise."""
    path = templates_path()
    if not path.exists():
        path = tmp_path / "templates.json"
        path.write_text(json.dumps({"actor": "Reply to {user_input}", "reward": "Rate {completion} for {user_input}",
                                    "rlhf": "Write a new request like {user_input}"}), encoding="utf-8")
    code, out, err = run_cli(capsys, str(path))
    assert code == 0, out + err
    assert "schema templates" in out


def test_a_bad_templates_file_is_named_by_key(tmp_path, capsys):
    path = tmp_path / "templates.json"
    path.write_text('{"actor": "Reply to {user_input}", "reward": 5, "judge": ["x"]}', encoding="utf-8")
    code, out, err = run_cli(capsys, str(path))
    assert code == 1
    assert out.splitlines() == [f"{path}: /judge: [\"x\"] is an array, expected a string",
                                f"{path}: /reward: 5 is a number, expected a string",
                                f"{path}: /rlhf: required key is missing"]
    other = tmp_path / "prompts.json"
    other.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert run_cli(capsys, "--schema", "templates", str(other))[0] == 1
    truncated = tmp_path / "broken" / "templates.json"
    truncated.parent.mkdir()
    truncated.write_text('{"actor": "x",\n "reward": ', encoding="utf-8")
    code, _, err = run_cli(capsys, str(truncated))
    assert code == 2 and f"{truncated}:2: invalid JSON" in err


# ---------------------------------------------------------------------------------------------- files and CLI


def test_cli_output_format_and_exit_codes(tmp_path, capsys):
    good = write_jsonl(tmp_path / "good.jsonl", [GOOD["reward"]] * 4)
    code, out, err = run_cli(capsys, good)
    assert code == 0 and out.strip() == "OK: 4 records in 1 file valid (schema reward)"
    assert "schema reward (detected from the keys completion, score, user_input)" in err

    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD["reward"], {**GOOD["reward"], "score": "4"}, "{not json",
                                               {"user_input": "x", "completion": 3, "score": 1}])
    code, out, err = run_cli(capsys, "--schema", "reward", bad)
    assert code == 1
    assert out.splitlines() == [
        f'{bad}:2: /score: "4" is a string, expected a number',
        f"{bad}:3: bad_json: invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        f"{bad}:4: /completion: 3 is a number, expected a string",
    ]
    assert err.strip() == "prefdata: error: 3 violations in 3 records (1 file); 4 records in 1 file checked"


def test_max_errors_limits_what_is_printed_not_what_is_counted(tmp_path, capsys):
    records = [{"user_input": f"prompt {i}", "completion": i} for i in range(30)]
    path = write_jsonl(tmp_path / "actor.jsonl", records)
    code, out, err = run_cli(capsys, "--max-errors", "5", path)
    assert code == 1 and len(out.splitlines()) == 5
    assert "30 violations in 30 records (1 file)" in err and "the first 5 shown" in err
    code, out, err = run_cli(capsys, path)
    assert len(out.splitlines()) == 20
    code, out, err = run_cli(capsys, "--max-errors", "0", path)
    assert len(out.splitlines()) == 30 and "shown" not in err
    report = validate_files([path], max_errors=7, out=None)
    assert len(report.violations) == 7 and report.violation_count == 30


def test_json_arrays_gzip_and_csv_are_streamed_with_their_line_numbers(tmp_path):
    array = tmp_path / "actor.json"
    array.write_text('[\n  {"user_input": "a", "completion": "b"},\n  {"user_input": "c",\n   "completion": 1}\n]\n',
                     encoding="utf-8")
    printed = []
    assert validate_files([array], out=printed.append).violation_count == 1
    assert printed == [f"{array}:3: /completion: 1 is a number, expected a string"]

    zipped = tmp_path / "rlhf.jsonl.gz"
    with gzip.open(zipped, "wt", encoding="utf-8") as f:
        f.write(json.dumps(GOOD["rlhf"]) + "\n" + json.dumps({"user_input": 7}) + "\n")
    printed = []
    validate_files([zipped], out=printed.append)
    assert printed == [f"{zipped}:2: /user_input: 7 is a number, expected a string"]

    # CSV holds only text: a score cell that spells a number is one; one that does not is reported.
    table = tmp_path / "reward.csv"
    table.write_text("user_input,completion,score\nHi,Hello,4\nHi,Hey,3.5\nHi,Yo,great\n", encoding="utf-8")
    printed = []
    report = validate_files([table], out=printed.append)
    assert report.schemas[str(table)] == "reward" and report.records == 3
    assert printed == [f'{table}:4: /score: "great" is a string, expected a number']


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.jsonl", None, "no such file"),
        ("pointer.jsonl", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        ("corrupt.jsonl.gz", gzip.compress(b'{"user_input": "x"}\n' * 1000)[:-40] + b"\x00" * 40, "gzip"),
        ("cut.json", b'[{"user_input": "x"}, {"user_input": ', "truncated or invalid JSON"),
        ("empty.jsonl", b"", "is empty"),
    ],
)
def test_file_level_defects_are_one_line_errors_with_exit_2(tmp_path, capsys, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_cli(capsys, str(path))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(path) in err and words in err, err
    assert "Traceback" not in err


def test_auto_refuses_ambiguous_or_unknown_keys(tmp_path, capsys):
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{**GOOD["actor"], **GOOD["preference"]}])
    code, _, err = run_cli(capsys, mixed)
    assert code == 2 and "ambiguous" in err and "actor" in err and "preference" in err
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"question": "x", "answer": "y"}])
    code, _, err = run_cli(capsys, unknown)
    assert code == 2 and "no known schema matches the keys answer, question" in err and "--schema" in err
    code, _, err = run_cli(capsys, "--schema", "nonsense", unknown)
    assert code == 2 and "unknown schema 'nonsense'" in err


def test_auto_uses_the_keys_of_many_records_not_just_the_first(tmp_path):
    """A reward file whose first record lacks its score is still a reward file, and that record is the one reported."""
    path = write_jsonl(tmp_path / "reward.jsonl", [GOOD["actor"], GOOD["reward"], GOOD["reward"]])
    printed = []
    report = validate_files([path], out=printed.append)
    assert report.schemas[path] == "reward"
    assert printed == [f"{path}:1: /score: required key is missing"]


def test_the_real_hh_file_is_detected_as_implicit_prompt_pairs(hh_harmless_test):
    report = validate_files([hh_harmless_test], out=None)
    assert report.schemas[str(hh_harmless_test)] == "preference_implicit"
    assert report.records == sum(1 for _ in iter_records(hh_harmless_test))
    # The records import quarantines (malformed transcripts, empty replies) are the ones validate reports.
    rejected = Counter()
    for record in iter_records(hh_harmless_test):
        try:
            FORMATS["trl-implicit"].parse(record.value, "hh")
        except RowError as e:
            rejected[e.reason] += 1
    assert rejected and report.reasons == rejected and report.bad_records == sum(rejected.values())


def test_a_schema_file_given_by_path(tmp_path, hh_harmless_test):
    """A user's own schema, here a stricter one for HH transcripts, is used as given."""
    schema = tmp_path / "hh.schema.json"
    schema.write_text(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                                  "required": ["chosen", "rejected"],
                                  "properties": {"chosen": {"$ref": "#/$defs/dialogue"},
                                                 "rejected": {"$ref": "#/$defs/dialogue"}},
                                  "$defs": {"dialogue": {"type": "string", "pattern": "^\\n\\nHuman: "}}}))
    expected_records = sum(1 for _ in iter_records(hh_harmless_test))
    report = validate_files([hh_harmless_test], schema=str(schema), out=None)
    assert report.ok and report.records == expected_records


def test_a_large_jsonl_is_streamed_not_loaded(tmp_path):
    """Peak traced memory while validating stays a small fraction of the file (whole loading would exceed it)."""
    path = tmp_path / "big.jsonl"
    filler = "lorem ipsum dolor sit amet " * 180  # ~5 KB per record
    with open(path, "w", encoding="utf-8") as f:
        for i in range(6000):
            f.write(json.dumps({"user_input": f"prompt {i}", "completion": filler, "score": i % 6}) + "\n")
        f.write(json.dumps({"user_input": "last", "completion": filler, "score": "six"}) + "\n")
    size = path.stat().st_size
    validate_files([write_jsonl(tmp_path / "warm.jsonl", [GOOD["reward"]])], out=None)  # imports, compiled schemas
    tracemalloc.start()
    try:
        report = validate_files([path], out=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.records == 6001 and report.violation_count == 1
    assert size > 25_000_000 and peak < size / 5, (peak, size)


# ------------------------------------------------------------------------------------------- dataset directories


def write_dataset(out, rows, *, split_at=None, quarantined=1, schema_id=None):
    kwargs = {"schema_id": schema_id} if schema_id else {}
    with DatasetWriter(out, command="test", **kwargs) as writer:
        for i, row in enumerate(rows):
            writer.count_in()
            writer.write(row, "train" if split_at is None or i < split_at else "eval")
        for i in range(quarantined):
            writer.count_in()
            writer.quarantine("identical_pair", "chosen and rejected are identical", {"n": i}, file="in.jsonl", line=i)
    return out


@pytest.fixture
def dataset(tmp_path, hh_harmless_test):
    return write_dataset(tmp_path / "ds", hh_rows(hh_harmless_test, 300), split_at=250, quarantined=2)


def problems_of(path) -> list[str]:
    printed = []
    validate_directory(path, max_errors=0, out=printed.append)
    return printed


def manifest_of(path):
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def save_manifest(path, manifest):
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def rewrite_shard(directory, split, table):
    """Replace a split's only shard with ``table`` and make the manifest agree, as a careful forger would."""
    shard = directory / split / "data-00000-of-00001.arrow"
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    manifest = manifest_of(directory)
    entry = manifest["splits"][split]["shards"][0]
    entry.update(bytes=shard.stat().st_size, sha256=file_sha256(shard), rows=table.num_rows)
    manifest["splits"][split]["fingerprint"] = hashlib.sha256(entry["sha256"].encode()).hexdigest()[:16]
    save_manifest(directory, manifest)


def read_shard(directory, split):
    """Read into memory, not memory-mapped: the shard is rewritten in place afterwards."""
    return pa.ipc.open_stream((directory / split / "data-00000-of-00001.arrow").read_bytes()).read_all()


def test_a_written_dataset_is_valid(dataset, capsys):
    code, out, err = run_cli(capsys, str(dataset))
    assert code == 0, out + err
    assert out.strip() == "OK: 300 rows in 1 dataset directory valid"  # the fixture writes 300 rows (250 + 50)
    code, out, err = run_cli(capsys, str(dataset / MANIFEST))  # the manifest alone, by its name
    assert code == 0 and "schema manifest" in out, out + err


def test_a_flipped_byte_in_a_shard_is_caught(dataset, capsys):
    shard = dataset / "train" / "data-00000-of-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, str(dataset))
    assert code == 1
    assert f"{dataset}/train/data-00000-of-00001.arrow: sha256 " in out


def test_edited_counts_in_the_manifest_are_caught(dataset):
    manifest = manifest_of(dataset)
    manifest["splits"]["train"]["rows"] += 1
    manifest["counts"]["records_in"] += 5
    save_manifest(dataset, manifest)
    found = problems_of(dataset)
    assert any("/splits/train/rows" in p for p in found)
    assert any(p.startswith(f"{dataset}/train: has 250 rows, the manifest says 251") for p in found)
    assert any("/counts/records_in" in p and "records in" in p for p in found)


def test_a_removed_shard_and_an_unlisted_one_are_caught(dataset):
    (dataset / "eval" / "data-00000-of-00001.arrow").rename(dataset / "eval" / "data-00000-of-00002.arrow")
    found = problems_of(dataset)
    assert f"{dataset}/eval/data-00000-of-00001.arrow: is missing" in found
    assert f"{dataset}/eval/data-00000-of-00002.arrow: is not in the manifest" in found


def test_an_edited_row_is_caught_by_its_id(dataset):
    table = read_shard(dataset, "train")
    chosen = table.column("chosen").to_pylist()
    chosen[7] = chosen[7] + " (edited)"
    rewrite_shard(dataset, "train", table.set_column(table.schema.get_field_index("chosen"), "chosen",
                                                     pa.array(chosen, pa.string())))
    found = problems_of(dataset)
    assert len(found) == 1 and found[0].startswith(f"{dataset}/train:7: /id: "), found
    assert "edited" in found[0]


def test_a_changed_arrow_schema_is_caught(dataset):
    table = read_shard(dataset, "train")
    scores = pa.array([str(s) for s in table.column("chosen_score").to_pylist()], pa.string())
    rewrite_shard(dataset, "train", table.set_column(table.schema.get_field_index("chosen_score"), "chosen_score",
                                                     scores).drop_columns(["meta"]))
    found = problems_of(dataset)
    assert any("Arrow schema is not prefdata.preference/2" in p and "missing column meta" in p
               and "column chosen_score is string, expected double" in p for p in found), found


def test_row_invariants_of_the_contract(tmp_path):
    user = [{"role": "user", "content": "Is the sea salty?"}]
    raw = [
        {"prompt": [*user, {"role": "assistant", "content": "Yes."}], "chosen": "a", "rejected": "b"},
        {"prompt": [{"role": "human", "content": "Is it?"}], "chosen": "a", "rejected": "b"},
        {"prompt": user, "chosen": None, "rejected": "b"},
        {"prompt": user, "chosen": "same", "rejected": "same"},
    ]
    rows = [{"id": row_id(r["prompt"], r["chosen"], r["rejected"]), "source": "test", "group": "g", **r,
             "chosen_score": None, "rejected_score": None, "meta": "{}"} for r in raw]
    rows.append(make_row(user, "Yes, it is.", "No.", source="test"))
    out = write_dataset(tmp_path / "ds", rows, quarantined=0)
    found = problems_of(out)
    assert found == [  # the messages and reason codes of make_row (prefdata.contract.rules)
        f"{out}/train:0: /prompt: the prompt must end with a user message (prompt_not_ending_with_user)",
        f"{out}/train:1: /prompt/0/role: role 'human' is not one of system, user, assistant, tool (bad_role)",
        f"{out}/train:2: /chosen: a rejected reply needs a chosen reply (missing_field)",
        f"{out}/train:3: /rejected: chosen and rejected are identical (identical_pair)",
    ]


def test_quarantine_must_match_the_manifest(dataset):
    with open(dataset / "quarantine.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"file": "x", "line": 1, "reason": "bad_json", "message": "m", "record": "{"}) + "\n")
        f.write("not json\n")
    found = problems_of(dataset)
    assert any("quarantine.jsonl: has 4 records, the manifest says quarantined 2" in p for p in found), found
    assert any("reason 'bad_json'" in p for p in found)
    assert any(p.startswith(f"{dataset}/quarantine.jsonl:4: invalid JSON") for p in found)
    manifest = manifest_of(dataset)
    manifest["counts"]["quarantined_by_reason"] = {"identical_pair": 1}
    save_manifest(dataset, manifest)
    assert any("/counts/quarantined" in p and "add up to 1" in p for p in problems_of(dataset))


def test_a_broken_or_missing_manifest(dataset, tmp_path, capsys):
    manifest = manifest_of(dataset)
    del manifest["counts"]
    manifest["schema"] = 3
    save_manifest(dataset, manifest)
    found = problems_of(dataset)
    assert f"{dataset}/{MANIFEST}: /counts: required key is missing" in found
    assert f"{dataset}/{MANIFEST}: /schema: 3 is a number, expected a string" in found
    manifest["counts"] = {"records_in": 0, "rows_out": 0, "quarantined": 0, "quarantined_by_reason": {}}
    manifest["schema"] = "prefdata.unknown/9"
    save_manifest(dataset, manifest)
    assert any("unknown row schema 'prefdata.unknown/9'" in p for p in problems_of(dataset))
    (dataset / MANIFEST).write_text("{", encoding="utf-8")
    assert problems_of(dataset)[0].startswith(f"{dataset}/{MANIFEST}: unreadable")
    (dataset / MANIFEST).unlink()
    code, out, _ = run_cli(capsys, str(dataset))
    assert code == 1 and out.startswith(f"{dataset}: not a prefdata dataset directory")
    assert run_cli(capsys, str(tmp_path / "nowhere"))[0] == 2


def test_an_unsup_dataset_is_checked_against_its_own_schema(tmp_path):
    rows = [make_unsup_row(f"Paragraph {i} of a plain text corpus.", source="corpus") for i in range(20)]
    out = write_dataset(tmp_path / "unsup", rows, quarantined=0, schema_id=UNSUP_SCHEMA_ID)
    assert problems_of(out) == []
    table = read_shard(out, "train")
    texts = table.column("text").to_pylist()
    texts[3] = "Paragraph three, rewritten."
    rewrite_shard(out, "train", table.set_column(2, "text", pa.array(texts, pa.string())))
    found = problems_of(out)
    assert len(found) == 1 and found[0].startswith(f"{out}/train:3: /id: ")


def test_files_and_directories_in_one_call(dataset, tmp_path, capsys):
    path = write_jsonl(tmp_path / "rlhf.jsonl", [GOOD["rlhf"]] * 2)
    code, out, _ = run_cli(capsys, path, str(dataset))
    assert code == 0 and out.startswith("OK: 2 records in 1 file and ") and "rows in 1 dataset directory" in out
