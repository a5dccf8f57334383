"""Near-duplicate filtering: the MinHash/LSH candidates + exact ROUGE-L make the all-pairs decisions on real HH prompts,
with far fewer LCS."""

from __future__ import annotations

import random

from llm_support import hh_rows

from prefdata.pipeline.similarity import NearDuplicateIndex, first_of_near_duplicates, lsh_bands, rouge_l, tokens, units


def brute_force_kept(texts: list[str], threshold: float) -> list[int]:
    """The all-pairs loop: each text against every text kept before it."""
    kept: list[int] = []
    toks = [tokens(t) for t in texts]
    for i, t in enumerate(toks):
        if t and any(rouge_l(t, toks[j]) >= threshold for j in kept):
            continue
        kept.append(i)
    return kept


def indexed_kept(texts: list[str], threshold: float) -> tuple[list[int], int]:
    index = NearDuplicateIndex(threshold)
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
        kept, comparisons = indexed_kept(texts, threshold)
        assert kept == expected
        assert first_of_near_duplicates(texts, threshold) == expected  # the bulk path decides the same
        assert len(expected) < len(texts)  # the near copies were caught
        all_pairs = sum(range(len(texts)))
        assert comparisons < all_pairs / 10


def test_bulk_filter_matches_all_pairs_on_a_thousand_real_prompts(hh_harmless_test):
    rng = random.Random(11)
    prompts = list(dict.fromkeys(row["prompt"][0]["content"] for row in hh_rows(hh_harmless_test, 1200)))[:1000]
    texts = prompts + [mutate(rng.choice(prompts), rng) for _ in range(300)]
    rng.shuffle(texts)
    expected = brute_force_kept(texts, 0.7)
    index = NearDuplicateIndex(0.7)
    assert first_of_near_duplicates(texts, 0.7, index) == expected
    assert index.comparisons < sum(range(len(texts))) / 100


def test_lsh_bands_reach_the_recall_goal_at_the_jaccard_bound():
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(threshold)
        bound = threshold / (2 - threshold)
        assert 1 - (1 - bound**rows) ** bands >= 0.99
        assert 1 - (1 - bound ** (rows + 1)) ** (256 // (rows + 1)) < 0.99  # and no narrower band would
    assert units(["a", "b", "a", "a"]) == "a b a_1 a_2"


def test_rouge_l_values():
    assert rouge_l(tokens("a b c d"), tokens("a b c d")) == 1.0
    assert rouge_l(tokens("a b c d"), tokens("e f")) == 0.0
    # LCS "a c d" = 3: P = 3/4, R = 3/3 -> F = 2 * 0.75 / 1.75
    assert abs(rouge_l(tokens("a b c d"), tokens("a c d")) - 1.5 / 1.75) < 1e-12
    assert tokens("长城 History!") == ["长", "城", "history"]
