"""Near-duplicate filtering of generated prompts by ROUGE-L, without comparing every pair.

Self-instruct drops a new instruction whose ROUGE-L F1 against any kept one is >= 0.7. Done naively that is N² LCS
computations. Here candidates come from an inverted index with *prefix filtering* (the set-similarity-join technique):
ROUGE-L F1 >= t needs an LCS of at least ``t·(|x|+|y|)/2`` tokens, hence at least that many shared tokens (counted with
multiplicity); with every token list sorted in one fixed global order (rarest first, from the seed texts), two lists
sharing that many tokens must share a token within their first ``|x| - ceil(t/(2-t)·|x|) + 1`` tokens. Only those prefix
tokens are indexed and probed, so common words are almost never touched, and the exact ROUGE-L is computed only for
the few candidates found. The result is exact: the same decisions as the all-pairs loop (a test checks that).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased words; CJK characters count one token each (they are not space-separated)."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 between two token lists (symmetric)."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _stable_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "big")


class NearDuplicateIndex:
    """Add texts one by one; `match` finds an indexed text with ROUGE-L >= ``threshold``, if any."""

    def __init__(self, threshold: float = 0.7, reference_texts: Iterable[str] = ()) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        # Global order: rare tokens first. Frequencies come from the reference texts and are fixed from here on,
        # which prefix filtering requires (any fixed order is correct; a rarity order keeps candidate lists short).
        self._frequency: Counter[str] = Counter(t for text in reference_texts for t in set(tokens(text)))
        self._postings: defaultdict[tuple[str, int], list[int]] = defaultdict(list)
        self._docs: list[tuple[str, list[str]]] = []
        self.comparisons = 0  # exact ROUGE-L computations done (for tests and the docs)

    def _ordered_units(self, toks: list[str]) -> list[tuple[str, int]]:
        """Tokens made unique by occurrence number (multiset overlap = set overlap), in the global order."""
        seen: Counter[str] = Counter()
        units = []
        for t in toks:
            units.append((t, seen[t]))
            seen[t] += 1
        return sorted(units, key=lambda u: (self._frequency[u[0]], _stable_hash(u[0]), u[0], u[1]))

    def _prefix_length(self, n: int) -> int:
        # Smallest overlap any partner can have with a text of n tokens and still reach the threshold.
        min_overlap = max(1, math.ceil(self.threshold / (2 - self.threshold) * n - 1e-9))
        return n - min_overlap + 1

    def _length_bounds(self, n: int) -> tuple[float, float]:
        ratio = self.threshold / (2 - self.threshold)
        return ratio * n - 1e-9, n / ratio + 1e-9

    def match(self, text: str) -> tuple[int, float] | None:
        """``(index, score)`` of the first (lowest-index) indexed text at or above the threshold, else None."""
        toks = tokens(text)
        if not toks:
            return None
        units = self._ordered_units(toks)
        low, high = self._length_bounds(len(toks))
        candidates = sorted({doc for unit in units[: self._prefix_length(len(units))] for doc in self._postings.get(unit, ())})
        for doc in candidates:
            other = self._docs[doc][1]
            if not low <= len(other) <= high:
                continue
            self.comparisons += 1
            score = rouge_l(toks, other)
            if score >= self.threshold:
                return doc, score
        return None

    def add(self, text: str) -> int:
        toks = tokens(text)
        index = len(self._docs)
        self._docs.append((text, toks))
        units = self._ordered_units(toks)
        for unit in units[: self._prefix_length(len(units))]:
            self._postings[unit].append(index)
        return index

    def text(self, index: int) -> str:
        return self._docs[index][0]

    def __len__(self) -> int:
        return len(self._docs)
