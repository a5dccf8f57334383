"""Rankings to pairs at split time (issue #12 item 3): the scored answers of one prompt become preference pairs.

A ranked answer is an ordinary *scored* row (prompt + chosen reply + chosen_score; `group` = the prompt's group, `meta`
with its rank, model and sampling). Answers are compared within one *set*: same input, source, group and prompt. A
policy chooses which comparisons become pairs, the higher score chosen:

- ``all``: every two answers (K-choose-2, InstructGPT);
- ``best-worst``: the best against the worst (one pair per prompt);
- ``best-vs-rest``: the best against each other answer (K-1 pairs).

A comparison whose margin is 0 or below ``min_margin`` is a tie and makes no pair. Equal scores are ordered by id, so the
result does not depend on row order. Without a policy (``pairs=None``) the split keeps its historical behaviour: ``all``
with no margin, and an answer in no pair stays a demonstration. With a policy, scored rows are used only as pairs: an
answer in no pair is quarantined (``not_paired``) rather than taught as a demonstration, because a machine-ranked
answer is not a vetted demonstration; the best answer still reaches sft as the chosen side of its pairs when the
prompt's group lands in the sft phase (a pair serves sft with its chosen reply), which is best-of-N for SFT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import make_row, prompt_group, reply, row_meta

POLICIES = ("all", "best-worst", "best-vs-rest")


@dataclass
class Pairing:
    """What pairing made of the scored rows: new pair rows, the rows they consumed and the rows left out."""

    pairs: list[dict] = field(default_factory=list)
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # (row index, message) per scored row that a policy left out of every pair (quarantined as `not_paired`).
    left_out: list[tuple[int, str]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def check_policy(pairs: str | None, min_margin: float) -> None:
    """One-line errors for an unknown policy or a margin that cannot be a score difference."""
    if pairs is not None and pairs not in POLICIES:
        raise PrefdataError(f"unknown pairing policy {pairs!r}; choose one of {', '.join(POLICIES)}", field="pairs")
    if not min_margin >= 0 or min_margin == float("inf"):
        raise PrefdataError(f"must be a finite number >= 0, got {min_margin!r}", field="min_margin")
    if min_margin and pairs is None:
        raise PrefdataError("--min-margin needs --pairs", field="min_margin")


def comparisons(size: int, policy: str) -> list[tuple[int, int]]:
    """The (higher, lower) positions a policy compares among ``size`` answers sorted best first."""
    if size < 2:
        return []
    if policy == "all":
        return [(i, j) for i in range(size) for j in range(i + 1, size)]
    if policy == "best-worst":
        return [(0, size - 1)]
    return [(0, j) for j in range(1, size)]


def pair_scored(table: pa.Table, rows: np.ndarray, input_of: np.ndarray, *, policy: str | None = None,
                min_margin: float = 0.0) -> Pairing:
    """Pairs from the scored rows ``rows`` of ``table`` by ``policy`` (None: historical `all`, see the module doc)."""
    sets: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for index, row in zip(rows.tolist(), table.take(pa.array(rows, type=pa.int64())).to_pylist()):
        key = (int(input_of[index]), row["source"], row["group"], prompt_group(row["prompt"]))
        sets[key].append((index, row))
    result, used, ties = Pairing(), set(), 0
    for members in sets.values():
        members.sort(key=lambda m: (-m[1]["chosen_score"], m[1]["id"]))
        for hi_at, lo_at in comparisons(len(members), policy or "all"):
            (hi_index, hi), (lo_index, lo) = members[hi_at], members[lo_at]
            margin = hi["chosen_score"] - lo["chosen_score"]
            if not margin > 0 or margin < min_margin:
                ties += 1
                continue
            meta = {**row_meta(hi), "margin": margin, "paired_from": [hi["id"], lo["id"]]}
            if policy is not None:
                meta["pairing"] = {"policy": policy, "min_margin": min_margin,
                                   "chosen": {"id": hi["id"], "score": hi["chosen_score"], "meta": row_meta(hi)},
                                   "rejected": {"id": lo["id"], "score": lo["chosen_score"], "meta": row_meta(lo)}}
            try:
                result.pairs.append(make_row(hi["prompt"], reply(hi, "chosen"), reply(lo, "chosen"), source=hi["source"],
                                             group=hi["group"], chosen_score=hi["chosen_score"],
                                             rejected_score=lo["chosen_score"], meta=meta))
            except RowError:  # identical replies with different scores: nothing to learn from this pair
                continue
            used.update((hi_index, lo_index))
        if policy is not None:
            result.left_out.extend((index, _left_out_reason(policy, min_margin, len(members)))
                                   for index, _ in members if index not in used)
    result.used = np.array(sorted(used), dtype=np.int64)
    result.counts = {"scored_rows": int(len(rows)), "pairs_made": len(result.pairs), "tied_comparisons": ties,
                     "rows_in_pairs": len(used)}
    if policy is None:
        result.counts["lone_as_demonstration"] = int(len(rows) - len(used))
    else:
        result.counts.update(policy=policy, min_margin=min_margin, prompts=len(sets), not_paired=len(result.left_out))
    return result


def _left_out_reason(policy: str, min_margin: float, size: int) -> str:
    if size < 2:
        return "the only scored answer to its prompt: nothing to compare it with"
    if policy == "best-worst":
        return f"--pairs best-worst uses only the best and the worst answer (or they tie within --min-margin {min_margin:g})"
    return f"no comparison under --pairs {policy} reached --min-margin {min_margin:g} (a tie)"
