"""Tests that kill mutants of `prefdata/pipeline/dedup.py` the suite let survive (issue #15). Expected values come
from small pure-Python reference implementations written here from the published definitions (SplitMix64; a
polynomial rolling hash; MinHash with the universal family ``((a·x + b) mod 2^64) >> 32``), not from the module.

Equivalent mutants left alive: ``argsort(kind="STABLE")`` (numpy reads the kind case-insensitively), the
``num_perm`` default of `similar_pairs` (every caller passes it), ``astype(None)`` in `band_keys` (keys are hashed
from the same values), ``np.zeros(0)`` without its int64 dtype for an empty result (concatenated with int64 indices, the same values).
Not killed: drawing the MinHash ``add`` constants from [1, 2^63) instead of [0, 2^63), which moves each by at most
one and so the high 32 bits of a sum only on a carry; no test text here hits one."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from prefdata.pipeline import dedup

M64 = (1 << 64) - 1


def splitmix64_ref(x: int) -> int:
    """Sebastiano Vigna's SplitMix64 output function for state ``x`` (one step)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def word_hash(word: str) -> int:
    return int.from_bytes(hashlib.sha256(b"word\0" + word.encode()).digest()[:8], "big")


def test_splitmix64_matches_the_published_mixer():
    values = [0, 1, 2, 0xDEADBEEF, M64, 1 << 63]
    assert dedup.splitmix64(np.array(values, dtype=np.uint64)).tolist() == [splitmix64_ref(v) for v in values]
    assert splitmix64_ref(0) == 0xE220A8397B1DCDAF  # the first output of SplitMix64 seeded with 0


def test_hash64_column_of_a_chunked_column_hashes_each_value():
    column = pa.chunked_array([["alpha", "beta"], ["beta", "gamma", "alpha"]])
    expected = [int.from_bytes(hashlib.sha256(b"s:" + v.encode()).digest()[:8], "big")
                for v in ("alpha", "beta", "beta", "gamma", "alpha")]
    assert dedup.hash64_column(column, "s:").tolist() == expected


def test_id_values_refuse_a_null_id():
    assert dedup.id_values(pa.array(["0123456789abcdef", None])) is None
    assert dedup.id_values(pa.array(["0123456789abcdef"])).tolist() == [0x0123456789ABCDEF]


def test_words_of_no_texts_hash_nothing():
    w = dedup.Words(pa.array([], type=pa.string()))
    assert w.hashes.shape == (0,) and [len(part) for part in w.shingles(3)] == [0, 0, 0]


def test_runs_are_the_rolling_hash_of_each_window():
    texts = ["red fox jumps high", "the red fox jumps"]
    w = dedup.Words(pa.array(texts))
    hashes, rows, starts = w.runs(3)
    flat = [word for text in texts for word in text.split()]
    expected = []
    for row, text in enumerate(texts):
        first = sum(len(t.split()) for t in texts[:row])
        for i in range(len(text.split()) - 2):
            window = sum(word_hash(flat[first + i + j]) * pow(0x9E3779B97F4A7C15, 2 - j, 1 << 64) for j in range(3))
            expected.append((splitmix64_ref((window & M64) ^ 3), row, first + i))
    assert list(zip(hashes.tolist(), rows.tolist(), starts.tolist())) == expected
    assert hashes[0] == hashes[3]  # "red fox jumps" hashes the same wherever it stands


def shingle_ref(words: list[str], ngram: int) -> int:
    value = 0
    for k in range(ngram):
        part = word_hash(words[k]) if k < len(words) else 0
        value = splitmix64_ref((value * 0x100000001B3 + part) & M64)
    return value


def test_shingles_of_a_short_text_pad_with_zero():
    w = dedup.Words(pa.array(["calm sea", "a b c d"]))
    hashes, rows, starts = w.shingles(3)
    assert hashes.tolist() == [shingle_ref(["calm", "sea"], 3), shingle_ref(["a", "b", "c"], 3),
                               shingle_ref(["b", "c", "d"], 3)]
    assert rows.tolist() == [0, 1, 1] and starts.tolist() == [0, 2, 3]


def test_minhash_is_the_universal_hash_minimum_and_one_text_alone_gets_the_same():
    texts = ["one two three four", "five six seven"]
    signatures = dedup.minhash_signatures(pa.array(texts), num_perm=4)
    rng = np.random.default_rng(0x5EED)
    mult = [int(v) | 1 for v in rng.integers(1, 2**63, size=4, dtype=np.uint64)]
    add = [int(v) for v in rng.integers(0, 2**63, size=4, dtype=np.uint64)]
    for row, text in enumerate(texts):
        words = text.split()
        shingles = [shingle_ref(words[i:i + 3], 3) for i in range(len(words) - 2)]
        assert signatures[row].tolist() == [min(((s * a + b) & M64) >> 32 & 0xFFFFFFFF for s in shingles)
                                            for a, b in zip(mult, add)]
    assert dedup.minhash_signatures(pa.array(texts[1:]), num_perm=4).tolist() == signatures[1:].tolist()
