"""Tests that kill mutants of `prefdata/pipeline/similarity.py` (issue #15): the LSH shape and the signature agreement
floor for a threshold, the length window at its exact edges, thresholds met exactly, bucket members beyond the first,
the signature table growing past its first 16 rows, and the counters. Texts are written here; ROUGE-L values,
bands and floors are worked out by hand in the comments.

Equivalent survivors:
- `rouge_l`'s `not a or not b` -> `and`: with one list empty the LCS is 0 and the next check returns 0.0 as well.
- `match`'s `if not found: return None`: with no candidates the loop below finds nothing and returns None too.
- the signature table's first size 16 -> 17: it only decides when the table doubles; its dtype uint32 -> None
  (float64): every uint32 is exact in a float64, so the agreement counts are the same.
- `match`'s ``count=len(found)`` left out of `np.fromiter`: it only preallocates.
- `first_of_near_duplicates` passing no ``sketch`` to `match` / `add`: they compute the same sketch again.
"""

from __future__ import annotations

import pytest

from prefdata.pipeline.similarity import (
    BOUND_RECALL,
    NUM_PERM,
    NearDuplicateIndex,
    first_of_near_duplicates,
    lsh_bands,
    rouge_l,
    tokens,
    units,
)

TEN = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"


def test_lsh_shape_and_agreement_floor_at_0_7():
    # bound = 0.7 / 1.3 = 0.5385; rows 4: 1 - (1 - 0.5385**4)**64 = 0.996 >= 0.99; rows 5: 1 - (1 - 0.5385**5)**51 = 0.906
    assert (NUM_PERM, BOUND_RECALL) == (256, 0.99)
    assert lsh_bands(0.7) == (64, 4)
    index = NearDuplicateIndex()
    assert (index.threshold, index.bands, index.rows) == (0.7, 64, 4)
    # (0.5385 - 4 * sqrt(0.5385 * 0.4615 / 256)) * 256 = (0.5385 - 0.1246) * 256 = 105.9 -> 106
    assert index.min_agree == 106
    # bound 0.2 / 1.8 = 0.111: two rows per band reach only 1 - (1 - 0.111**2)**128 = 0.80, so one row per band
    assert lsh_bands(0.2) == (256, 1)
    # rows 5 at 0.7 reach 0.90581 with 256 // 5 = 51 bands (0.90668 with 256 / 5 = 51.2): a recall between them stops at 4
    assert lsh_bands(0.7, 256, 0.90625) == (64, 4)
    at_five_rows = 1 - (1 - (0.7 / 1.3) ** 5) ** 51  # a recall exactly met with 5 rows takes 5 rows
    assert lsh_bands(0.7, 256, at_five_rows) == (51, 5)


def test_threshold_one_needs_every_place_to_agree_and_an_exact_copy():
    index = NearDuplicateIndex(1.0)
    assert (index.bands, index.rows, index.min_agree) == (1, 256, 256)  # bound 1: one band of all 256 places
    index.add(TEN)
    assert index.match(TEN.upper()) == (0, 1.0)
    assert index.match(TEN + " kilo") is None


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.0000001])
def test_threshold_outside_zero_to_one_is_refused(threshold):
    with pytest.raises(ValueError, match=r"^threshold must be in \(0, 1\]$"):
        NearDuplicateIndex(threshold)


def test_rouge_l_is_f1_of_the_lcs():
    # LCS 7 of 10 and 10 tokens: P = R = 0.7 -> F = 0.7; LCS 2 of 4 and 2: P = 0.5, R = 1 -> F = 2/3
    assert rouge_l(TEN.split(), TEN.split()[:7] + ["x", "y", "z"]) == pytest.approx(0.7)
    assert rouge_l(tokens("a b c d"), tokens("a b")) == pytest.approx(2 / 3)
    assert rouge_l(tokens("a b"), tokens("a b c d")) == pytest.approx(2 / 3)
    assert rouge_l([], ["a"]) == 0.0 and rouge_l(["a"], []) == 0.0
    assert tokens("Hello, WORLD_x 42") == ["hello", "world", "x", "42"]


@pytest.mark.parametrize("indexed, query", [("a b", "a b c d"), ("a b c d", "a b")])
def test_length_window_includes_its_exact_edges(indexed, query):
    # threshold 2/3: bound 1/2, so a 4-token text may match 2 to 8 tokens; ROUGE-L of these two is exactly 2/3
    index = NearDuplicateIndex(2 / 3)
    index.add(indexed)
    found = index.match(query)
    assert found is not None and found[0] == 0 and found[1] == pytest.approx(2 / 3)
    assert (index.candidates, index.comparisons) == (1, 1)


def test_a_candidate_outside_the_length_window_is_skipped_not_compared():
    # threshold 2/3: a 9-token text may match 4.5 to 18 tokens; "a b c d" (4 tokens, Jaccard 4/9) is a candidate only
    index = NearDuplicateIndex(2 / 3)
    index.add("a b c d")
    assert index.match("a b c d e f g h i") is None
    assert (index.candidates, index.comparisons) == (1, 0)
    index.add("a b c d e f g h i")
    assert index.match("a b c d e f g h i") == (1, 1.0)  # the skipped one does not end the search
    assert index.comparisons == 1


def test_every_member_of_a_shared_bucket_is_a_candidate_and_the_lowest_index_wins():
    index = NearDuplicateIndex()
    assert [index.add(TEN) for _ in range(3)] == [0, 1, 2]
    assert index.match(TEN) == (0, 1.0)
    assert (index.candidates, index.comparisons) == (3, 1)
    assert index.match(TEN) == (0, 1.0)
    assert (index.candidates, index.comparisons) == (6, 2)
    assert len(index) == 3 and index.text(2) == TEN


def test_a_text_without_tokens_is_indexed_but_never_matches():
    index = NearDuplicateIndex()
    assert index.add("?!") == 0 and index.add(TEN) == 1
    assert index.match("?!") is None and index.match("") is None
    assert index.match(TEN) == (1, 1.0)
    assert (len(index), index.text(0), index.candidates) == (2, "?!", 1)


def test_the_signature_table_grows_past_its_first_rows():
    texts = [f"{word} unique text number {word}{i} {i}" for i, word in enumerate(TEN.split() * 5)]
    index = NearDuplicateIndex()
    for text in texts:
        index.add(text)
    assert [index.match(text)[0] for text in texts] == list(range(len(texts)))


def test_units_number_repeats_and_bulk_filter_keeps_first_of_near_copies():
    assert units(["a", "b", "a", "b", "a"]) == "a b a_1 b_1 a_2"
    near = TEN.split()[:7] + ["x", "y", "z"]  # ROUGE-L 0.7 with TEN: a duplicate at the default threshold
    texts = [TEN, "something else entirely here", " ".join(near), TEN]
    assert first_of_near_duplicates(texts) == [0, 1]
    assert first_of_near_duplicates(texts, 0.71) == [0, 1, 2]
    index = NearDuplicateIndex()
    index.add(TEN)
    assert first_of_near_duplicates(["something else entirely here", TEN], index=index) == [0]
    assert len(index) == 2
