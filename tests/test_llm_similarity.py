"""Near-duplicate filtering: the indexed search makes exactly the all-pairs ROUGE-L decisions, with far fewer LCS."""

from __future__ import annotations

import random

from llm_support import hh_rows

from prefdata.pipeline.similarity import NearDuplicateIndex, rouge_l, tokens


def brute_force_kept(texts: list[str], threshold: float) -> list[int]:
    kept: list[int] = []
    for i, text in enumerate(texts):
        t = tokens(text)
        if t and any(rouge_l(t, tokens(texts[j])) >= threshold for j in kept):
            continue
        kept.append(i)
    return kept


def indexed_kept(texts: list[str], threshold: float, reference: list[str]) -> tuple[list[int], int]:
    index = NearDuplicateIndex(threshold, reference_texts=reference)
    kept = []
    for i, text in enumerate(texts):
        if index.match(text) is None:
            index.add(text)
            kept.append(i)
    return kept, index.comparisons


def mutate(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(0, max(1, len(words) // 3))):
        op = rng.randint(0, 2)
        position = rng.randrange(len(words)) if words else 0
        if op == 0 and words:
            del words[position]
        elif op == 1:
            words.insert(position, rng.choice(["please", "kindly", "now", "the", "very", "again"]))
        elif words:
            words[position] = words[position].upper()
    return " ".join(words) or "empty"


def test_index_matches_brute_force_on_real_prompts_and_near_copies(hh_harmless_test):
    rng = random.Random(7)
    prompts = [row["prompt"][0]["content"] for row in hh_rows(hh_harmless_test, 120)]
    texts = prompts + [mutate(rng.choice(prompts), rng) for _ in range(120)] + ["你好，请介绍一下长城的历史。", "请介绍长城的历史。"]
    rng.shuffle(texts)
    for threshold in (0.6, 0.7):
        expected = brute_force_kept(texts, threshold)
        kept, comparisons = indexed_kept(texts, threshold, reference=prompts[:60])
        assert kept == expected
        assert len(expected) < len(texts)  # the near copies were caught
        all_pairs = sum(range(len(texts)))
        assert comparisons < all_pairs / 10


def test_rouge_l_values():
    assert rouge_l(tokens("a b c d"), tokens("a b c d")) == 1.0
    assert rouge_l(tokens("a b c d"), tokens("e f")) == 0.0
    # LCS "a c d" = 3: P = 3/4, R = 3/3 -> F = 2 * 0.75 / 1.75
    assert abs(rouge_l(tokens("a b c d"), tokens("a c d")) - 1.5 / 1.75) < 1e-12
    assert tokens("长城 History!") == ["长", "城", "history"]
