"""Benchmark: the near-duplicate prompt filter (`prefdata.pipeline.similarity`, ROUGE-L, MinHash/LSH candidates) from
1,000 to 100,000 prompts, and what LSH misses against the all-pairs loop on the real HH prompts.

Input: the first-turn prompts of the real HH-RLHF harmless-base test file (unique texts), then new prompts up to the
size, one of two kinds: ``variations`` replace about half the words of one HH prompt by words drawn from the HH
vocabulary and add a unique marker word (so each HH prompt heads a family of partial copies that grows with the size:
~47 per prompt at 100k, a worst case for any candidate stage); ``markov`` walks the HH prompts' word bigrams (HH-style
prompts without families). In both, one in twenty is instead a near copy of an earlier prompt (one word replaced), which
the filter must drop. Each size is the prefix of one sequence, so sizes grow by adding prompts only.

Part growth: time, kept prompts, LSH candidates and exact LCS computed per size, and their ratios to the previous size
(linear work doubles when the size doubles; quadratic work quadruples). Part recall: on the real prompts, the kept list
of the filter against the all-pairs loop per threshold, and every pair at or above the threshold that the candidate
stage does not propose (no shared LSH bucket, or too few agreeing signature places), with its score.

    python bench/similarity_scale.py                           # growth to 100k, recall at 0.5-0.9
    python bench/similarity_scale.py --sizes 1000,2000,4000 --baseline /tmp/old_similarity.py
        # the same sizes with an older similarity.py (e.g. `git show <rev>:prefdata/pipeline/similarity.py`) for a
        # before/after; the old index is built with the real prompts as its reference texts
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HH = Path(os.environ.get("PREFDATA_SHARED_DATA", REPO.parent / "shared" / "data")) / "hh-rlhf/harmless-base/test.jsonl.gz"


def hh_prompts() -> list[str]:
    from prefdata.jobs.importer import ParsedRow, iter_parsed

    texts = (item.row["prompt"][0]["content"] for item in iter_parsed(HH, "trl-implicit") if isinstance(item, ParsedRow))
    return list(dict.fromkeys(texts))


def prompt_sequence(base: list[str], size: int, kind: str = "variations", seed: int = 0) -> list[str]:
    """``base`` then new prompts up to ``size`` texts (see the module doc); one in twenty is a near copy instead."""
    rng = random.Random(seed)
    vocabulary = sorted({word for text in base for word in text.split()})
    follows: dict[str, list[str]] = {}
    for text in base:
        words = ["<s>", *text.split(), "</s>"]
        for left, right in zip(words, words[1:]):
            follows.setdefault(left, []).append(right)
    texts = list(base[:size])
    for i in range(len(texts), size):
        if i % 20 == 0:  # a near copy: one word of an earlier prompt replaced
            words = texts[rng.randrange(i)].split() or ["empty"]
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        elif kind == "variations":  # about half the words of one HH prompt replaced, plus a unique marker
            words = [rng.choice(vocabulary) if rng.random() < 0.5 else w for w in base[i % len(base)].split()] + [f"v{i}"]
        else:  # "markov": a walk over the HH prompts' word bigrams, no family of variants
            words, word = [], "<s>"
            while len(words) < 200:
                word = rng.choice(follows[word])
                if word == "</s>":
                    break
                words.append(word)
        texts.append(" ".join(words) or "empty")
    return texts


def run_filter(texts: list[str], threshold: float) -> dict:
    from prefdata.pipeline.similarity import NearDuplicateIndex, first_of_near_duplicates

    index = NearDuplicateIndex(threshold)
    start = time.perf_counter()
    kept = first_of_near_duplicates(texts, threshold, index)
    return {"seconds": time.perf_counter() - start, "kept": len(kept), "candidates": index.candidates,
            "lcs": index.comparisons}


def run_baseline(module, texts: list[str], threshold: float, reference: list[str]) -> dict:
    index = module.NearDuplicateIndex(threshold, reference_texts=reference)
    start = time.perf_counter()
    kept = 0
    for text in texts:
        if index.match(text) is None:
            index.add(text)
            kept += 1
    return {"seconds": time.perf_counter() - start, "kept": kept, "candidates": None, "lcs": index.comparisons}


def growth(base: list[str], sizes: list[int], threshold: float, baseline, kind: str) -> None:
    print(f"\n## growth: ROUGE-L >= {threshold}, HH prompts + {kind}\n")
    print("| prompts | method | kept | LSH candidates | exact LCS | seconds | LCS / prompt | x time | x LCS | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    texts = prompt_sequence(base, max(sizes), kind)
    methods = [("MinHash/LSH + ROUGE-L", lambda t: run_filter(t, threshold))]
    if baseline is not None:
        methods.append(("prefix-filtered index (before)", lambda t: run_baseline(baseline, t, threshold, base)))
    run_filter(texts[:200], threshold)  # warm-up: the first call pays pyarrow's and numpy's lazy set-up
    for name, method in methods:
        previous = None
        for size in sizes:
            r = method(texts[:size])
            ratio_time = f"{r['seconds'] / previous['seconds']:.2f}" if previous else ""
            ratio_lcs = f"{r['lcs'] / max(previous['lcs'], 1):.2f}" if previous else ""
            candidates = f"{r['candidates']:,}" if r["candidates"] is not None else "n/a"
            print(f"| {size:,} | {name} | {r['kept']:,} | {candidates} | {r['lcs']:,} | {r['seconds']:.2f} "
                  f"| {r['lcs'] / size:.2f} | {ratio_time} | {ratio_lcs} | {peak_mb():,.0f} |", flush=True)
            previous = r


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def all_pairs_kept(toks: list[list[str]], threshold: float) -> tuple[list[int], int]:
    """The all-pairs loop: kept positions, and the LCS it computes (each text against the kept ones until a match)."""
    from prefdata.pipeline.similarity import rouge_l

    kept: list[int] = []
    count = 0
    for i, t in enumerate(toks):
        duplicate = False
        for j in kept if t else ():
            count += 1
            if rouge_l(t, toks[j]) >= threshold:
                duplicate = True
                break
        if not duplicate:
            kept.append(i)
    return kept, count


def similar_pairs_exact(toks: list[list[str]], threshold: float) -> list[tuple[int, int, float]]:
    """Every pair with ROUGE-L >= threshold: LCS only where the shared-token count allows it (changes no result)."""
    from scipy.sparse import csr_matrix

    from prefdata.pipeline.similarity import rouge_l, units

    vocabulary: dict[str, int] = {}
    ids = [[vocabulary.setdefault(u, len(vocabulary)) for u in units(t).split()] for t in toks]
    pointers = np.cumsum([0] + [len(i) for i in ids])
    matrix = csr_matrix((np.ones(pointers[-1]), np.concatenate([np.array(i, dtype=np.int64) for i in ids]), pointers),
                        shape=(len(ids), len(vocabulary)))
    shared = (matrix @ matrix.T).tocoo()
    lengths = np.array([len(t) for t in toks])
    keep = (shared.row < shared.col) & (shared.data >= threshold * (lengths[shared.row] + lengths[shared.col]) / 2 - 1e-9)
    pairs = []
    for a, b in zip(shared.row[keep].tolist(), shared.col[keep].tolist()):
        score = rouge_l(toks[a], toks[b])
        if score >= threshold:
            pairs.append((a, b, score))
    return pairs


def recall(base: list[str], thresholds: list[float]) -> None:
    from prefdata.pipeline import dedup
    from prefdata.pipeline.similarity import NearDuplicateIndex, first_of_near_duplicates, signatures, tokens

    toks = [tokens(t) for t in base]
    sigs = signatures(base)
    print(f"\n## recall on the {len(base):,} real HH first-turn prompts (unique texts)\n")
    print("| threshold | bands x rows | pairs >= threshold | pairs LSH does not propose | their scores | "
          "kept (all-pairs) | kept (LSH) | decisions differing | LCS (LSH) | LCS (all-pairs) |")
    print("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for threshold in thresholds:
        index = NearDuplicateIndex(threshold)
        keys = dedup.band_keys(sigs, index.bands, index.rows)
        pairs = similar_pairs_exact(toks, threshold)
        missed = [(a, b, s) for a, b, s in pairs if not (keys[a] == keys[b]).any()
                  or (sigs[a] == sigs[b]).sum() < index.min_agree]
        expected, all_pairs_lcs = all_pairs_kept(toks, threshold)
        kept = first_of_near_duplicates(base, threshold, index)
        differing = len(set(expected) ^ set(kept))
        scores = ", ".join(f"{s:.3f}" for _, _, s in sorted(missed, key=lambda m: m[2])[:6]) or "-"
        print(f"| {threshold} | {index.bands} x {index.rows} | {len(pairs):,} | {len(missed):,} | {scores} "
              f"| {len(expected):,} | {len(kept):,} | {differing} | {index.comparisons:,} | {all_pairs_lcs:,} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000,50000,100000")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--recall-thresholds", default="0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--baseline", type=Path, help="an older similarity.py to run on the same sizes")
    parser.add_argument("--inputs", default="variations,markov", help="which prompt sequences to grow")
    parser.add_argument("--skip-recall", action="store_true")
    args = parser.parse_args()
    base = hh_prompts()
    baseline = None
    if args.baseline:
        spec = importlib.util.spec_from_file_location("old_similarity", args.baseline)
        baseline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(baseline)
    for kind in args.inputs.split(","):
        growth(base, [int(s) for s in args.sizes.split(",")], args.threshold, baseline, kind)
    if not args.skip_recall:
        recall(base, [float(t) for t in args.recall_thresholds.split(",")])


if __name__ == "__main__":
    main()
