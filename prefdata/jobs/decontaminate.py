"""Decontamination for `split --exclude` (issue #12 item 6): drop training rows whose prompt is an eval prompt or holds a
long run of one.

Two checks, both over whole columns: the exact prompt after lower-casing and collapsing whitespace (as before), and
word n-gram overlap (13 words by default, as the GPT-3 paper and open-instruct do): a training prompt that shares any
run of ``ngram`` consecutive words (lower-cased, punctuation removed) with a benchmark prompt is contaminated, so an eval
prompt with a word added or a sentence appended is caught when it is long enough to keep a 13-word run intact. A
benchmark prompt shorter than ``ngram`` words is looked for as a whole run of its words, if it has at least
`MIN_RUN_WORDS` (GPT-3 lowers N per benchmark the same way, to 8 at least); shorter ones are matched exactly only,
since a run of a few common words would remove unrelated prompts.

Benchmarks are prefdata dataset directories (every split) or plain JSONL files: one benchmark prompt per line, either
a JSON string or an object with ``prompt`` (a string or a list of messages) and an optional ``id``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from prefdata.contract.errors import PrefdataError
from prefdata.pipeline import dedup
from prefdata.storage.dataset import load_tables
from prefdata.storage.readers import BadRecord, check_input_file, iter_records

MIN_RUN_WORDS = 8
_CHUNK_ROWS = 50_000  # rows per pass: bounds the per-word arrays (~40 bytes a word)


@dataclass
class Benchmarks:
    """Benchmark prompts as text, with the id and file each came from (what a removal names)."""

    texts: pa.Array
    ids: list[str]
    files: list[str]


@dataclass
class Removals:
    """Contaminated rows (table positions) with, per row, the benchmark prompt matched and a one-line message."""

    rows: np.ndarray
    messages: list[str]
    details: list[dict[str, Any]]
    exact: int
    ngram: int


def read_benchmarks(paths: list[str | os.PathLike]) -> Benchmarks:
    """Every benchmark prompt of the directories and JSONL files in ``paths``, in order."""
    texts: list[str] = []
    ids: list[str] = []
    files: list[str] = []
    for path in paths:
        if Path(path).is_dir():
            for table in load_tables(path).values():
                texts += dedup.prompt_texts(table.column("prompt")).to_pylist()
                ids += table.column("id").to_pylist()
                files += [str(path)] * table.num_rows
            continue
        for record in iter_records(check_input_file(path), "jsonl"):
            text_line = isinstance(record, BadRecord) and record.reason == "not_an_object" and isinstance(record.raw, str)
            if isinstance(record, BadRecord) and not text_line:  # a JSON string is a benchmark prompt, not a bad line
                raise PrefdataError(record.message, file=record.file, line=record.line)
            value = record.raw if text_line else record.value
            texts.append(_benchmark_prompt(value, record.file, record.line))
            value_id = value.get("id") if isinstance(value, dict) else None
            ids.append(str(value_id) if value_id is not None else f"line {record.line}")
            files.append(str(path))
    return Benchmarks(pa.array(texts, type=pa.string()), ids, files)


def _benchmark_prompt(value: Any, file: str, line: int | None) -> str:
    prompt = value.get("prompt") if isinstance(value, dict) else value
    if isinstance(prompt, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt):
        prompt = "\n".join(m["content"] for m in prompt)
    if not isinstance(prompt, str) or not prompt.strip():
        raise PrefdataError("needs a non-empty prompt: a string, or a list of messages with string content",
                            file=file, line=line, field="prompt")
    return prompt


def ngram_matches(texts: pa.Array, benchmark: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Texts holding a run of ``ngram`` words of a benchmark prompt (or all of a shorter one, see the module doc).

    Returns ``(text positions, benchmark position, the run of words)`` per contaminated text, ascending; each text names
    the longest run size it matched and, within it, its first run in the text and the lowest benchmark position.
    """
    bench_words = dedup.Words(benchmark)
    lengths = np.diff(bench_words.offsets)
    run = np.minimum(lengths, ngram)
    searchable = lengths >= min(ngram, MIN_RUN_WORDS)
    text_words = dedup.Words(texts)
    found: dict[int, tuple[int, str]] = {}
    for size in sorted({int(s) for s in run[searchable]}, reverse=True):
        bench_hash, owner, _ = bench_words.runs(size)
        wanted = searchable[owner] & (run[owner] == size)
        bench_hash, owner = bench_hash[wanted], owner[wanted]
        order = np.lexsort((owner, bench_hash))
        bench_hash, owner = bench_hash[order], owner[order]
        text_hash, text_row, start = text_words.runs(size)
        if not len(bench_hash):
            continue
        # binary search in the (small) sorted benchmark runs: np.isin would sort all the texts' runs for each size
        slot = np.minimum(np.searchsorted(bench_hash, text_hash), len(bench_hash) - 1)
        hit = np.flatnonzero(bench_hash[slot] == text_hash)
        first_rows, first = np.unique(text_row[hit], return_index=True)
        for row, at in zip(first_rows.tolist(), hit[first].tolist()):
            if row not in found:
                bench_at = int(owner[slot[at]])
                found[row] = (bench_at, " ".join(text_words.flat.slice(int(start[at]), size).to_pylist()))
    rows = sorted(found)
    return (np.array(rows, dtype=np.int64), np.array([found[r][0] for r in rows], dtype=np.int64),
            [found[r][1] for r in rows])


def contaminated(table: pa.Table, rows: np.ndarray, benchmarks: Benchmarks, ngram: int) -> Removals:
    """Which of ``rows`` (positions in ``table``) have a benchmark prompt, exactly or by an ``ngram``-word run
    (``ngram`` 0: exact only)."""
    bench_keys = dedup.hash64_column(dedup.normalise(benchmarks.texts), "prompt\0")
    key_order = np.argsort(bench_keys, kind="stable")
    sorted_keys = bench_keys[key_order]
    found_rows, messages, details = [], [], []
    exact = by_ngram = 0
    for begin in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[begin : begin + _CHUNK_ROWS]
        texts = dedup.prompt_texts(table.column("prompt").take(pa.array(chunk)))
        keys = dedup.hash64_column(dedup.normalise(texts), "prompt\0") if len(chunk) else np.zeros(0, np.uint64)
        same = np.isin(keys, sorted_keys)
        for at in np.flatnonzero(same).tolist():
            bench_at = int(key_order[np.searchsorted(sorted_keys, keys[at])])
            found_rows.append(int(chunk[at]))
            messages.append(f"the prompt is benchmark prompt {benchmarks.ids[bench_at]} (exact, after lower-casing)")
            details.append(_detail(benchmarks, bench_at, None))
        exact += int(same.sum())
        if ngram > 0:
            rest = np.flatnonzero(~same)
            hit, bench_of, runs = ngram_matches(texts.take(pa.array(rest)), benchmarks.texts, ngram)
            for at, bench_at, words in zip(rest[hit].tolist(), bench_of.tolist(), runs):
                found_rows.append(int(chunk[at]))
                size = len(words.split())
                messages.append(f"shares the {size}-gram {words[:120]!r} with benchmark prompt {benchmarks.ids[bench_at]}")
                details.append(_detail(benchmarks, bench_at, words))
            by_ngram += len(hit)
    order = np.argsort(found_rows, kind="stable")
    return Removals(np.array(found_rows, dtype=np.int64)[order], [messages[i] for i in order],
                    [details[i] for i in order], exact, by_ngram)


def _detail(benchmarks: Benchmarks, at: int, words: str | None) -> dict[str, Any]:
    detail = {"benchmark": benchmarks.files[at], "benchmark_id": benchmarks.ids[at]}
    if words is not None:
        detail["ngram"] = words
    return detail
