"""Exact duplicates, MinHash/LSH near-duplicates and prompt keys for decontamination."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from split_helpers import hh_rows, pair, user, write_dataset

from prefdata.contract.row import PREFERENCE_SCHEMA, make_row
from prefdata.jobs.split import split_datasets
from prefdata.pipeline import dedup

WORDS = ["river", "stone", "maple", "copper", "lantern", "orchard", "violet", "harbor", "meadow", "thistle", "cobalt", "saffron", "ember", "willow", "granite", "falcon", "juniper", "quartz", "tundra", "velvet", "marble", "cinder", "hollow", "prairie", "beacon", "amber", "spruce", "glacier", "ridge"]


def essay(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PREFERENCE_SCHEMA)


def test_id_values_match_python_hex_parsing():
    rows = [pair(i) for i in range(50)]
    ids = pa.chunked_array([pa.array([r["id"] for r in rows[:20]]), pa.array([r["id"] for r in rows[20:]])])
    assert dedup.id_values(ids.combine_chunks().slice(3)).tolist() == [int(r["id"], 16) for r in rows[3:]]
    assert dedup.id_values(pa.array(["not-a-hex-id-xyz"])) is None


def test_splitmix64_is_a_bijection_on_a_sample():
    values = np.arange(100_000, dtype=np.uint64) * np.uint64(0x9E3779B9)
    assert len(np.unique(dedup.splitmix64(values))) == len(values)


def test_exact_duplicates_keep_the_same_row_whatever_the_order():
    rows = [pair(i) for i in range(30)]
    twin = dict(rows[4], source="custom/other")
    for order in (rows + [twin, rows[7]], [rows[7], twin] + rows[::-1]):
        t = table(order)
        dropped, kept = dedup.exact_duplicates(t)
        ids = t.column("id").to_pylist()
        sources = t.column("source").to_pylist()
        assert sorted(ids[i] for i in dropped) == sorted([rows[4]["id"], rows[7]["id"]])
        assert {ids[i] for i in kept} == {rows[4]["id"], rows[7]["id"]}
        keeper = {ids[i]: sources[i] for i in kept}
        assert keeper[rows[4]["id"]] == "custom/other"  # sorts before "custom/test", in either input order


def test_near_duplicates_finds_planted_copies_and_keeps_distinct_rows():
    rng = random.Random(3)
    originals = [make_row(user(f"Write about topic {i}. {essay(rng, 20)}"), essay(rng), essay(rng), source="t")
                 for i in range(300)]
    planted = []
    for i in range(0, 300, 10):  # change 2 words of 100: Jaccard of 3-shingles stays well above 0.8
        row = originals[i]
        words = row["chosen"].split()
        words[5] = "zeppelin"
        words[40] = "kaleidoscope"
        planted.append(make_row(row["prompt"], " ".join(words), row["rejected"], source="t"))
    t = table(originals + planted)
    dropped, kept = dedup.near_duplicates(t, 0.8)
    ids = t.column("id").to_pylist()
    pairs = {frozenset((ids[d], ids[k])) for d, k in zip(dropped, kept)}
    expected = {frozenset((originals[i]["id"], planted[j]["id"])) for j, i in enumerate(range(0, 300, 10))}
    assert pairs == expected


def test_near_duplicates_on_real_hh_rows_never_drop_more_than_a_few(hh_harmless_test):
    rows = hh_rows(hh_harmless_test)
    t = table(rows)
    dropped, kept = dedup.near_duplicates(t, 0.9)
    assert len(dropped) < 0.02 * len(rows)
    texts = dedup.row_texts(t).to_pylist()
    for d, k in zip(dropped, kept):  # every reported pair really is similar (exact Jaccard over word 3-grams)
        a, b = shingles(texts[d]), shingles(texts[k])
        assert len(a & b) / len(a | b) > 0.7


def shingles(text: str) -> set[tuple[str, ...]]:
    import re

    words = re.sub(r"[^\w\s]+", " ", text.lower()).split()
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_lsh_params_put_the_s_curve_midpoint_at_or_below_the_threshold(threshold):
    bands, rows = dedup.lsh_params(threshold, 64)
    assert bands * rows == 64
    assert (1 / bands) ** (1 / rows) <= threshold


def test_prompt_keys_ignore_case_and_whitespace_but_not_words():
    a = make_row(user("How do I  bake bread?"), "x", source="t")
    b = make_row(user("how do i bake bread?\n"), "y", source="t")
    c = make_row(user("How do I bake cake?"), "x", source="t")
    keys = dedup.prompt_keys(table([a, b, c]))
    assert keys[0] == keys[1] != keys[2]


def test_near_dup_option_counts_in_the_manifest(tmp_path):
    rng = random.Random(5)
    rows = [make_row(user(f"Tell me about {essay(rng, 8)}"), essay(rng), essay(rng), source="t") for _ in range(50)]
    copy = make_row(rows[0]["prompt"], rows[0]["chosen"] + " indeed", rows[0]["rejected"], source="t")
    source = write_dataset(tmp_path / "in", {"train": [*rows, copy]})
    manifest = split_datasets([source], tmp_path / "out", near_dup=0.8, quiet=True)
    assert manifest["dedup"]["near_duplicate"] == 1
    assert manifest["counts"]["records_out"] == 50


def test_keep_smallest_id_keeps_one_row_per_cluster_by_id():
    ids = pa.array(["c", "a", "b", "e", "d", "f"])
    a, b = np.array([0, 1, 3]), np.array([1, 2, 4])  # clusters {0, 1, 2} and {3, 4}; row 5 alone
    dropped, kept = dedup.keep_smallest_id(a, b, ids)
    assert dropped.tolist() == [0, 2, 3]
    assert kept.tolist() == [1, 1, 4]  # "a" keeps its place in the first cluster, "d" in the second


def test_keep_smallest_id_matches_a_breadth_first_search_on_random_graphs():
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = 60
        ids = [f"{v:016x}" for v in rng.permutation(10_000)[:n]]
        a, b = rng.integers(0, n, 40), rng.integers(0, n, 40)
        neighbours: dict[int, set[int]] = {}
        for x, y in zip(a.tolist(), b.tolist()):
            neighbours.setdefault(x, set()).add(y)
            neighbours.setdefault(y, set()).add(x)
        expected = {}
        for start in sorted(neighbours):
            if start in expected:
                continue
            cluster, todo = {start}, [start]
            while todo:
                for other in neighbours[todo.pop()] - cluster:
                    cluster.add(other)
                    todo.append(other)
            keeper = min(cluster, key=lambda m: ids[m])
            expected.update({m: keeper for m in cluster if m != keeper})
        dropped, kept = dedup.keep_smallest_id(a, b, pa.array(ids))
        assert dict(zip(dropped.tolist(), kept.tolist())) == expected
        assert dropped.tolist() == sorted(expected)


def test_near_duplicates_compare_replies_stored_as_turns():
    """Rows sharing prompt and rejected reply but with different multi-message chosen replies are not duplicates;
    a copy of the same turns with two words changed is."""
    rng = random.Random(5)
    prompt, rejected = user(f"Plan a trip. {essay(rng, 20)}"), essay(rng)

    def turns(words: list[str]) -> list[dict]:
        return [{"role": "assistant", "content": " ".join(words[:30])},
                {"role": "assistant", "content": " ".join(words[30:])}]

    first, second = essay(rng).split(), essay(rng).split()
    copy = list(first)
    copy[5], copy[40] = "zeppelin", "kaleidoscope"
    rows = [make_row(prompt, turns(words), rejected, source="t") for words in (first, second, copy)]
    dropped, kept = dedup.near_duplicates(table(rows), 0.8)
    assert sorted(zip(dropped, kept)) in ([(2, 0)], [(0, 2)])
