"""Tests that kill mutants of `prefdata/jobs/decontaminate.py` the suite let survive (issue #15): reading benchmarks,
n-gram matching and the removals, on prompts written here (every expected row, run and message comes from them).

Equivalent survivors (one line each):
- `ngram_matches` returning the benchmark positions with no dtype: numpy makes Python ints int64, the dtype given.
- `contaminated` with ``np.zeros(np.uint64)`` for an empty chunk: unreachable, a chunk of ``range(0, n, step)`` has rows.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from support import write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import PREFERENCE_SCHEMA, make_row
from prefdata.jobs import decontaminate
from prefdata.jobs.decontaminate import Benchmarks, contaminated, ngram_matches, read_benchmarks

WORDS = [f"w{i}" for i in range(15)]  # 15 distinct words


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def jsonl(path, *values) -> str:
    path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    return str(path)


def test_read_benchmarks_from_jsonl_strings_objects_and_messages(tmp_path):
    bench = jsonl(tmp_path / "b.jsonl", "Plain text?", {"id": 7, "prompt": "With an id"},
                  {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]})
    read = read_benchmarks([bench])
    assert read.texts.to_pylist() == ["Plain text?", "With an id", "Be brief.\nWhy?"]
    assert read.ids == ["line 1", "7", "line 3"] and read.files == [bench] * 3
    assert read.texts.type == pa.string()


def test_read_benchmarks_from_a_dataset_directory_and_a_file_in_order(tmp_path):
    rows = [make_row(user("Held out one"), "a", source="t"), make_row(user("Held out two"), "b", source="t")]
    held_out = write_dataset(tmp_path / "eval", {"test": rows})
    bench = jsonl(tmp_path / "b.jsonl", "After the directory")
    read = read_benchmarks([held_out, bench])
    assert read.texts.to_pylist() == ["Held out one", "Held out two", "After the directory"]
    assert read.ids == [rows[0]["id"], rows[1]["id"], "line 1"]
    assert read.files == [str(held_out), str(held_out), bench]


@pytest.mark.parametrize("value", ["", "   ", {"prompt": 3}, {"prompt": [{"role": "user", "content": 1}]},
                                   {"prompt": ["text"]}, {"question": "no prompt"}])
def test_a_benchmark_without_a_usable_prompt_is_a_one_line_error(tmp_path, value):
    bench = jsonl(tmp_path / "b.jsonl", "fine", value)
    with pytest.raises(PrefdataError) as refused:
        read_benchmarks([bench])
    assert (refused.value.file, refused.value.line, refused.value.field) == (bench, 2, "prompt")
    assert refused.value.message == "needs a non-empty prompt: a string, or a list of messages with string content"


def test_a_benchmark_line_that_is_not_json_is_a_one_line_error(tmp_path):
    bench = tmp_path / "b.jsonl"
    bench.write_text('"fine"\n{not json\n', encoding="utf-8")
    with pytest.raises(PrefdataError) as refused:
        read_benchmarks([bench])
    assert (refused.value.file, refused.value.line) == (str(bench), 2)


def _matches(texts: list[str], bench: list[str], ngram: int = 13):
    rows, owners, runs = ngram_matches(pa.array(texts, pa.string()), pa.array(bench, pa.string()), ngram)
    return rows.tolist(), owners.tolist(), runs


def test_a_13_word_run_of_a_longer_benchmark_prompt_is_found_first_where_it_stands():
    bench = " ".join(WORDS)  # 15 words: runs 0-12, 1-13, 2-14
    text = "Say " + " ".join(WORDS[1:14]) + " now"  # holds run 1-13 only
    assert _matches(["nothing like it", text], [bench]) == ([1], [0], [" ".join(WORDS[1:14])])
    assert _matches([" ".join(WORDS[:12])], [bench]) == ([], [], [])  # 12 words: no 13-word run


def test_the_lowest_benchmark_and_the_longest_run_are_named():
    long_prompt = " ".join(WORDS)
    short = " ".join(WORDS[:9])  # 9 words: searched whole
    text = " ".join(WORDS[:13])  # holds 13 words of the long one and all 9 of the short one
    assert _matches([text], [short, long_prompt, long_prompt]) == ([0], [1], [text])
    assert _matches([short], [long_prompt, short, short]) == ([0], [1], [short])


def test_short_benchmark_prompts_need_min_run_words():
    eight, seven = " ".join(WORDS[:8]), " ".join(WORDS[8:15])
    assert decontaminate.MIN_RUN_WORDS == 8
    texts = ["Before " + eight + " after", "Before " + seven + " after"]
    assert _matches(texts, [eight, seven]) == ([0], [0], [eight])


def test_a_smaller_ngram_searches_shorter_runs():
    bench = "one two three four"
    # ngram 3: the benchmark is searched by its 3-word runs, found in the second text
    assert _matches(["four three two one", "zero two three four five"], [bench], ngram=3) == ([1], [0], ["two three four"])
    assert _matches(["one two"], [bench], ngram=3) == ([], [], [])


def test_several_texts_are_each_reported_once_in_order():
    bench = " ".join(WORDS)
    texts = [" ".join(WORDS[:13]), "unrelated words", " ".join(WORDS[2:15]) + " " + " ".join(WORDS[:13])]
    rows, owners, runs = _matches(texts, [bench])
    assert rows == [0, 2] and owners == [0, 0] and runs == [" ".join(WORDS[:13]), " ".join(WORDS[2:15])]


def _table(prompts: list[str]) -> pa.Table:
    rows = [make_row(user(p), "yes", "no", source="t") for p in prompts]
    return pa.Table.from_pylist(rows, schema=PREFERENCE_SCHEMA)


def _benchmarks(texts: list[str]) -> Benchmarks:
    return Benchmarks(pa.array(texts, pa.string()), [f"b{i}" for i in range(len(texts))], ["bench.jsonl"] * len(texts))


def test_contaminated_names_exact_and_ngram_matches_in_row_order():
    long_prompt = " ".join(WORDS)
    table = _table(["keep me", "  Exact   ONE ", "Prefix " + " ".join(WORDS[:13]), "exact two", "keep too"])
    benchmarks = _benchmarks(["exact two", "exact one", long_prompt])
    found = contaminated(table, np.arange(5), benchmarks, 13)
    run = " ".join(WORDS[:13])
    assert found.rows.tolist() == [1, 2, 3] and (found.exact, found.ngram) == (2, 1)
    assert found.messages == ["the prompt is benchmark prompt b1 (exact, after lower-casing)",
                              f"shares the 13-gram {run!r} with benchmark prompt b2",
                              "the prompt is benchmark prompt b0 (exact, after lower-casing)"]
    assert found.details == [{"benchmark": "bench.jsonl", "benchmark_id": "b1"},
                             {"benchmark": "bench.jsonl", "benchmark_id": "b2", "ngram": run},
                             {"benchmark": "bench.jsonl", "benchmark_id": "b0"}]
    assert found.rows.dtype == np.int64


def test_contaminated_checks_only_the_rows_given_and_exact_only_with_ngram_0(tmp_path):
    table = _table(["exact one", "Prefix " + " ".join(WORDS[:13]), "exact one"])
    benchmarks = _benchmarks(["exact one", " ".join(WORDS)])
    exact_only = contaminated(table, np.array([1, 2]), benchmarks, 0)
    assert exact_only.rows.tolist() == [2] and (exact_only.exact, exact_only.ngram) == (1, 0)
    assert contaminated(table, np.array([], dtype=np.int64), benchmarks, 13).rows.tolist() == []


def test_contaminated_over_several_chunks_keeps_table_positions(monkeypatch):
    monkeypatch.setattr(decontaminate, "_CHUNK_ROWS", 2)
    table = _table(["a b", "exact one", "c d", "Prefix " + " ".join(WORDS[:13]), "exact one"])
    found = contaminated(table, np.array([4, 3, 1, 0]), _benchmarks(["exact one", " ".join(WORDS)]), 13)
    assert found.rows.tolist() == [1, 3, 4] and (found.exact, found.ngram) == (2, 1)
    assert found.messages[1].startswith("shares the 13-gram")


def test_long_runs_are_cut_to_120_characters_in_the_message():
    words = [f"word{i:02d}longer" for i in range(13)]  # 13 x 12 characters + 12 spaces = 168 characters
    run = " ".join(words)
    found = contaminated(_table([run]), np.arange(1), _benchmarks([run + " extra"]), 13)
    assert found.messages == [f"shares the 13-gram {run[:120]!r} with benchmark prompt b0"]
    assert found.details[0]["ngram"] == run


def test_an_exact_match_names_the_first_of_repeated_benchmark_prompts():
    # 40 benchmark prompts, every other one the same text: an unstable sort would name any of its 20 copies
    texts = [text for i in range(20) for text in (f"prompt {i}", "the duplicate")]
    found = contaminated(_table(["The   duplicate"]), np.arange(1), _benchmarks(texts), 0)
    assert found.messages == ["the prompt is benchmark prompt b1 (exact, after lower-casing)"]
