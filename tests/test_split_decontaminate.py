"""Decontamination by n-gram overlap: near copies of a benchmark prompt (one word added) are caught, every removal
names the benchmark prompt it matched, and the counts reconcile (in = out + removed)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest
from split_helpers import hh_rows, pair, user, write_dataset

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import make_row
from prefdata.jobs.decontaminate import ngram_matches, read_benchmarks
from prefdata.jobs.split import split_datasets

EVAL = ("Can you explain step by step how a bill becomes a law in the United States Congress today and who signs "
        "it at the very end")


def add_word(text: str, rng: random.Random) -> str:
    words = text.split()
    words.insert(rng.randrange(len(words) + 1), "please")
    return " ".join(words)


def quarantine(directory):
    return [json.loads(line) for line in (directory / "quarantine.jsonl").open()]


def test_one_word_added_is_caught_by_13_grams_but_not_by_exact_match(tmp_path):
    train = [pair(i) for i in range(30)] + [make_row(user(EVAL.replace("step by step", "step by step, please,")),
                                                     "Answer.", "Other.", source="web")]
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "civics-7", "prompt": EVAL}) + "\n" + json.dumps({"prompt": "Short one?"}) + "\n")
    source = write_dataset(tmp_path / "in", {"train": train})
    exact_only = split_datasets([source], tmp_path / "exact", exclude=[bench], exclude_ngram=0, quiet=True)
    assert exact_only["dedup"]["contaminated"] == 0
    manifest = split_datasets([source], tmp_path / "out", exclude=[bench], quiet=True)
    report = manifest["decontamination"]
    assert report["ngram"] == 13 and report["benchmark_prompts"] == 2
    assert report["removed_exact"] == 0 and report["removed_ngram"] == 1
    assert report["rows_checked"] == 31 == report["rows_kept"] + report["removed_exact"] + report["removed_ngram"]
    (entry,) = [q for q in quarantine(tmp_path / "out") if q["reason"] == "contaminated"]
    assert entry["record"]["id"] == train[-1]["id"]
    assert entry["record"]["benchmark_id"] == "civics-7" and entry["record"]["benchmark"] == str(bench)
    assert "13-gram" in entry["message"] and "civics-7" in entry["message"]
    counts = manifest["counts"]
    assert counts["records_in"] == counts["records_out"] + counts["quarantined"] == 31


def test_exact_match_still_names_the_benchmark_row(tmp_path):
    train = [pair(i) for i in range(20)]
    eval_row = make_row(user("  QUESTION 3: how do I water a fern in WINTER?"), "x", source="eval")
    held_out = write_dataset(tmp_path / "eval", {"test": [eval_row]})
    source = write_dataset(tmp_path / "in", {"train": train})
    manifest = split_datasets([source], tmp_path / "out", exclude=[held_out], quiet=True)
    assert manifest["decontamination"]["removed_exact"] == 1
    (entry,) = quarantine(tmp_path / "out")
    assert entry["record"]["benchmark_id"] == eval_row["id"] and "exact" in entry["message"]


def word_count(text: str) -> int:
    return len(text.replace("'", " ").split())


def test_real_hh_eval_prompts_with_one_word_added_are_caught(tmp_path, hh_harmless_test):
    rows = hh_rows(hh_harmless_test, 300)
    evals, train = rows[:96], rows[96:]
    rng = random.Random(3)
    copies = [make_row([{**r["prompt"][0], "content": add_word(r["prompt"][0]["content"], rng)}, *r["prompt"][1:]],
                       "A.", "B.", source="copy") for r in evals]
    held_out = write_dataset(tmp_path / "eval", {"test": evals})
    source = write_dataset(tmp_path / "in", {"train": train + copies})
    manifest = split_datasets([source], tmp_path / "out", exclude=[held_out], quiet=True)
    caught = {q["record"]["id"] for q in quarantine(tmp_path / "out") if q["reason"] == "contaminated"}
    # The word goes into the first message: a 13-word run survives when the later messages hold 13 words, or the
    # first message holds 27 (13 on one side of the insertion). Every such copy must be caught.
    sure = [c["id"] for c, r in zip(copies, evals)
            if sum(word_count(m["content"]) for m in r["prompt"][1:]) >= 13 or word_count(r["prompt"][0]["content"]) >= 27]
    assert set(sure) <= caught and len(sure) > 11  # the exact match caught 11 in 96 (issue #12)
    assert manifest["decontamination"]["removed_ngram"] == len(caught) == manifest["dedup"]["contaminated"]


def test_ngram_matches_finds_lowest_benchmark_and_short_prompts_as_whole_runs():
    bench = pa.array(["one two three four five six seven eight nine", "alpha beta", "x " * 20])
    train = pa.array(["zero one two three four five six seven eight nine ten", "alpha beta gamma", "nothing here"])
    rows, benchmark, ngram_text = ngram_matches(train, bench, 13)
    # the 9-word benchmark prompt is matched whole (>= 8 words); "alpha beta" is too short for n-gram matching
    assert rows.tolist() == [0] and benchmark.tolist() == [0]
    assert ngram_text == ["one two three four five six seven eight nine"]


def test_bad_benchmark_file_is_one_line_error(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"prompt": "fine"}\n{"question": "no prompt field"}\n')
    with pytest.raises(PrefdataError) as info:
        read_benchmarks([bench])
    assert str(info.value).startswith(f"{bench}:2: prompt:")


def test_rolling_runs_hash_equal_word_runs_equal_wherever_they_stand():
    from prefdata.pipeline.dedup import Words

    words = Words(pa.array(["a b c d e", "x y c d e", "c d", "d c"]))
    hashes, rows, starts = words.runs(2)
    by_text = {" ".join(words.flat.slice(int(s), 2).to_pylist()): h for h, s in zip(hashes.tolist(), starts.tolist())}
    assert rows.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 3]
    cd = [h for h, s in zip(hashes.tolist(), starts.tolist()) if words.flat.slice(int(s), 2).to_pylist() == ["c", "d"]]
    assert len(cd) == 3 and len(set(cd)) == 1  # "c d" in three texts, three places: one hash
    assert len(set(by_text.values())) == len(by_text)  # different runs ("c d" vs "d c", ...) differ
    assert len(words.runs(3)[0]) == 3 + 3  # texts 3 and 4 have no 3-word run
