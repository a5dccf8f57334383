"""Near-duplicate filtering of generated prompts by ROUGE-L, without comparing every pair.

Self-instruct drops a new instruction whose ROUGE-L F1 against any kept one is >= 0.7. Done naively that is N² LCS
computations. Here a MinHash/LSH stage (`prefdata.pipeline.dedup`'s MinHash and banding) proposes candidates and the
exact ROUGE-L decides (only for candidates whose signatures also agree on enough places; see `NearDuplicateIndex`).
ROUGE-L F1 >= t needs an LCS of ``t·(|x|+|y|)/2`` tokens, hence that many shared tokens counted
with multiplicity, hence a Jaccard similarity >= ``t/(2-t)`` of the token *multisets* (tokens made unique by occurrence
number). The signatures are MinHash over those units, and the bands are chosen so that two texts right at that bound
share a bucket with probability >= `BOUND_RECALL`: the exact check then sees almost every pair that can pass, while its
work grows with the number of similar texts, not with N². The trade-off: a pair at the bound is missed with probability
about 1 - BOUND_RECALL (pairs well above it almost never); `tests/test_llm_similarity.py` shows the same decisions as the
all-pairs loop on real HH prompts and `bench/similarity_scale.py` measures the misses and the growth.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from rapidfuzz.distance import LCSseq

from prefdata.pipeline import dedup

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)
NUM_PERM = 256
BOUND_RECALL = 0.99


def tokens(text: str) -> list[str]:
    """Lower-cased words; CJK characters count one token each (they are not space-separated)."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence of two token lists: rapidfuzz's bit-parallel C++ (replaced a pure-Python DP that took
    ~0.6 ms per HH pair and most of the filter's time; `bench/similarity_scale.py`)."""
    return int(LCSseq.similarity(a, b))


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 between two token lists (symmetric)."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def lsh_bands(threshold: float, num_perm: int = NUM_PERM, recall: float = BOUND_RECALL) -> tuple[int, int]:
    """(bands, rows per band) with the most rows per band (fewest chance collisions) that still puts two texts at the
    Jaccard bound ``t/(2-t)`` of ROUGE-L ``t`` in a shared bucket with probability >= ``recall``."""
    bound = threshold / (2 - threshold)
    rows = 1
    while rows < num_perm and 1 - (1 - bound ** (rows + 1)) ** (num_perm // (rows + 1)) >= recall:
        rows += 1
    return num_perm // rows, rows


def units(toks: Sequence[str]) -> str:
    """Tokens made unique by occurrence number (``a a`` -> ``a a_1``), so set Jaccard of units is multiset Jaccard of
    tokens; `tokens` never contain ``_``, so a unit cannot collide with a token."""
    seen: Counter[str] = Counter()
    out = []
    for token in toks:
        out.append(f"{token}_{seen[token]}" if seen[token] else token)
        seen[token] += 1
    return " ".join(out)


def signatures(texts: Sequence[str], num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signatures (N x num_perm) of the token multisets of ``texts``, in one vectorised pass."""
    return dedup.minhash_signatures(pa.array([units(tokens(t)) for t in texts], type=pa.string()),
                                    num_perm=num_perm, ngram=1)


class Sketch(NamedTuple):
    """What the index needs of a text besides its tokens: its MinHash signature and its LSH bucket in each band."""

    signature: np.ndarray
    keys: list[int]


class NearDuplicateIndex:
    """Add texts one by one; `match` finds an indexed text with ROUGE-L >= ``threshold``, if any.

    Candidates are the indexed texts sharing an LSH bucket whose signatures agree on at least `min_agree` places (the
    Jaccard bound less four standard errors of the MinHash estimate: cheap, vectorised, and it spares the LCS of the
    many texts that share a bucket by chance); only they get the exact ROUGE-L. ``sketch`` arguments take a text's
    `sketches` row computed in bulk for many texts (one text at a time costs ~1 ms each).
    """

    def __init__(self, threshold: float = 0.7, *, num_perm: int = NUM_PERM) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold, self.num_perm = threshold, num_perm
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        bound = threshold / (2 - threshold)
        self.min_agree = math.ceil((bound - 4 * math.sqrt(bound * (1 - bound) / num_perm)) * num_perm - 1e-9)
        self._buckets: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]
        self._docs: list[tuple[str, list[str]]] = []
        self._signatures = np.zeros((16, num_perm), dtype=np.uint32)
        self.candidates = 0  # indexed texts an LSH bucket proposed (for the benchmark)
        self.comparisons = 0  # exact ROUGE-L computations done (for tests and the docs)

    def sketches(self, texts: Sequence[str]) -> list[Sketch]:
        """Signature and bucket keys of each text, computed in one vectorised pass."""
        sigs = signatures(texts, self.num_perm)
        return [Sketch(sig, keys) for sig, keys in zip(sigs, dedup.band_keys(sigs, self.bands, self.rows).tolist())]

    def _length_bounds(self, n: int) -> tuple[float, float]:
        ratio = self.threshold / (2 - self.threshold)
        return ratio * n - 1e-9, n / ratio + 1e-9

    def match(self, text: str, sketch: Sketch | None = None) -> tuple[int, float] | None:
        """``(index, score)`` of the first (lowest-index) indexed text at or above the threshold among the
        candidates."""
        toks = tokens(text)
        if not toks:
            return None
        sketch = sketch or self.sketches([text])[0]
        found: set[int] = set()
        for bucket, key in zip(self._buckets, sketch.keys):
            members = bucket.get(key)
            if isinstance(members, list):
                found.update(members)
            elif members is not None:
                found.add(members)
        self.candidates += len(found)
        if not found:
            return None
        docs = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
        docs = docs[(self._signatures[docs] == sketch.signature).sum(axis=1) >= self.min_agree]
        low, high = self._length_bounds(len(toks))
        for doc in docs.tolist():
            other = self._docs[doc][1]
            if not low <= len(other) <= high:
                continue
            self.comparisons += 1
            score = rouge_l(toks, other)
            if score >= self.threshold:
                return doc, score
        return None

    def add(self, text: str, sketch: Sketch | None = None) -> int:
        toks = tokens(text)
        index = len(self._docs)
        self._docs.append((text, toks))
        if toks:
            sketch = sketch or self.sketches([text])[0]
            if index == len(self._signatures):
                self._signatures = np.concatenate([self._signatures, np.zeros_like(self._signatures)])
            self._signatures[index] = sketch.signature
            for bucket, key in zip(self._buckets, sketch.keys):
                members = bucket.setdefault(key, index)  # a lone member is stored bare: most buckets hold one
                if members != index:
                    if isinstance(members, list):
                        members.append(index)
                    else:
                        bucket[key] = [members, index]
        return index

    def text(self, index: int) -> str:
        return self._docs[index][0]

    def __len__(self) -> int:
        return len(self._docs)


def first_of_near_duplicates(texts: Sequence[str], threshold: float = 0.7, index: NearDuplicateIndex | None = None
                             ) -> list[int]:
    """Self-instruct's filter over a list: positions of the texts kept, each kept unless ROUGE-L >= ``threshold``
    with a text kept before it (or already in ``index``)."""
    index = NearDuplicateIndex(threshold) if index is None else index
    kept = []
    for position, (text, sketch) in enumerate(zip(texts, index.sketches(texts))):
        if index.match(text, sketch) is None:
            index.add(text, sketch)
            kept.append(position)
    return kept
