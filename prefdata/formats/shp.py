"""Stanford Human Preferences (SHP): one Reddit post and two of its comments per record, the preferred one by votes.

``labels == 1`` means ``human_ref_A`` is preferred. The dataset card recommends keeping pairs whose score ratio is at
least 2 and at most 5 pairs per post; `PostCap` applies the cap in bounded memory (the best ``k`` per post, whatever the
order of the file), and `group` is the ``post_id`` so one post never straddles phases.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.row import make_row
from prefdata.formats import common

REPO_ID = "stanfordnlp/SHP"
SPLITS = ("train", "validation", "test")
RECOMMENDED_MIN_SCORE_RATIO = 2.0
RECOMMENDED_MAX_PAIRS_PER_POST = 5
_SPLIT_SUFFIX = re.compile(r"_(train|validation|test)$")


def domain_name(value: str) -> str:
    """``askculinary_train`` -> ``askculinary``: the SHP files append the split to the domain column."""
    return _SPLIT_SUFFIX.sub("", value)


@dataclass(frozen=True)
class ShpPair:
    """One checked SHP record: its row, the key the per-post cap groups by, and its score ratio (None: unknown)."""

    row: dict[str, Any]
    post: str
    score_ratio: float | None


def _number(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowError("schema_violation", f"{value!r} is not a finite number", key)
    return float(value)


def _a_preferred(record: Mapping[str, Any], score_a: float | None, score_b: float | None) -> bool:
    """Which reply is preferred: the label when present, checked against the scores; else the scores alone."""
    label = record.get("labels")
    if label is not None and (isinstance(label, bool) or label not in (0, 1)):
        raise RowError("bad_label", f"labels is {label!r}, not 0 or 1", "labels")
    if score_a is not None and score_b is not None:
        if score_a == score_b:
            raise RowError("tie", f"both comments have score {score_a:g}: no preference", "labels")
        if label is not None and (label == 1) != (score_a > score_b):
            raise RowError("label_conflict", f"labels={label} but score_A={score_a:g}, score_B={score_b:g}", "labels")
        return score_a > score_b
    if label is None:
        raise RowError("missing_field", "no 'labels' and no score_A/score_B to tell which reply is preferred", "labels")
    return label == 1


def shp_pair(record: Mapping[str, Any], domain: str) -> ShpPair:
    """One SHP record as a canonical pair; `RowError` with a reason code for what cannot be one."""
    history = common.text(record, "history")  # the checks and messages of `prefdata import` (`common.text`)
    ref_a, ref_b = common.text(record, "human_ref_A"), common.text(record, "human_ref_B")
    score_a, score_b = _number(record, "score_A"), _number(record, "score_B")
    a_first = _a_preferred(record, score_a, score_b)
    chosen, rejected = (ref_a, ref_b) if a_first else (ref_b, ref_a)
    chosen_score, rejected_score = (score_a, score_b) if a_first else (score_b, score_a)
    ratio = _number(record, "score_ratio")
    if ratio is None and chosen_score is not None and rejected_score is not None:
        ratio = chosen_score / rejected_score if rejected_score > 0 else math.inf
    if isinstance(record.get("domain"), str):
        domain = domain_name(record["domain"])
    post_id = record.get("post_id")
    ids = (record.get("c_root_id_A"), record.get("c_root_id_B"))
    meta: dict[str, Any] = {"domain": domain, "post_id": post_id, "upvote_ratio": _number(record, "upvote_ratio"),
                            "score_ratio": ratio if ratio is not None and math.isfinite(ratio) else None,
                            "chosen_comment_id": ids[0] if a_first else ids[1],
                            "rejected_comment_id": ids[1] if a_first else ids[0]}
    row = make_row(
        [{"role": "user", "content": history}], chosen, rejected, source=f"shp/{domain}",
        group=str(post_id) if post_id is not None else None, chosen_score=chosen_score,
        rejected_score=rejected_score, meta={k: v for k, v in meta.items() if v is not None},
    )
    return ShpPair(row, post=row["group"], score_ratio=ratio)


class PostCap:
    """Keeps, per post, the ``limit`` pairs with the largest score ratio (ties: the earlier record).

    Memory is ``limit`` entries per post, not the whole file, and the answer does not depend on posts being
    contiguous: a post that reappears later in the file is still one post.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._best: dict[str, list[tuple[float, int]]] = {}
        self.pairs_per_post: dict[str, int] = {}

    def offer(self, post: str, score_ratio: float | None, index: int) -> None:
        self.pairs_per_post[post] = self.pairs_per_post.get(post, 0) + 1
        heap = self._best.setdefault(post, [])
        entry = (score_ratio if score_ratio is not None else 0.0, -index)  # min-heap: smallest ratio, then latest
        if len(heap) < self.limit:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)

    def kept(self) -> set[int]:
        return {-negative for heap in self._best.values() for _, negative in heap}
