"""The LLM-judge rankers of `prefdata rank`: pointwise multi-aspect ratings, pairwise comparisons sorted with few
questions, and a panel of judges with its agreement.

Each ranker takes the answers to one prompt and returns, per answer, a score (higher = better) and what the judge
said, or a `Reject` for an answer it could not rate. The job (`prefdata.jobs.rank`) turns scores into ranks and rows.

- **Pointwise** (``judge``): every answer is rated 1-5 on each aspect (the ``aspect_<name>`` templates: UltraFeedback's
  helpfulness, honesty, harmlessness, instruction following), and the ratings are combined by ``--combine``: ``mean``
  (UltraFeedback's overall rating) or ``min`` (an answer is as good as its weakest aspect).
- **Pairwise** (``pairwise``): the ``judge_pairwise`` template, asked in both orders per comparison (as `score
  --pairwise`). A comparison counts only when both orders agree; a tie, an inconsistent verdict (the judge followed the
  position) or an unreadable reply counts as *equal*. Answers are ordered by a merge sort, which asks at most
  ``K*ceil(log2 K) - 2**ceil(log2 K) + 1`` comparisons instead of K*(K-1)/2 (5 vs 6 for K=4, 17 vs 28 for K=8, 49 vs 120
  for K=16). Scores follow the sorted order: the best gets K-1, and each next answer one less, unless it was compared
  with the one before it and judged equal (then the same score), so ``split`` never pairs answers the judge could not
  tell apart.
- **Panel** (``panel``): several judges rate pointwise; the score is the mean of their combined ratings. Per answer the
  agreement is Fleiss' P_i (the share of judge pairs giving the same rounded rating); per run, Fleiss' kappa.
- **Pairwise panel** (``pairwise`` with several judges): every comparison is asked of every judge, in both orders; each
  judge's verdict is first, second or equal (as above), and the comparison's verdict is the one more than half the
  judges gave, else equal. Per answer the agreement is the mean Fleiss' P_i of the comparisons it took part in (over
  the judges' first/second/equal); per run, Fleiss' kappa over the comparisons.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any

from prefdata.jobs.score import ask_judge, conversation_text, derive_seed, pairwise_verdict, parse_choice, parse_score
from prefdata.llm.batch import gather_all
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig
from prefdata.llm.templating import ASPECT_PREFIX, fill
from prefdata.pipeline.records import Reject

COMBINE_RULES = ("mean", "min")
ASPECT_RANGE = (1.0, 5.0)  # UltraFeedback's rating scale, what the bundled aspect templates ask for
# `score.pairwise_verdict` names the sides of a labelled pair; here they are the first and second answer compared.
VERDICTS = {"chosen": "first", "rejected": "second", "tie": "tie", "inconsistent": "inconsistent"}
VERDICT_COUNTS = ("first", "second", "tie", "inconsistent", "unparseable")
PANEL_VERDICTS = ("first", "second", "equal")


def combine(ratings: Mapping[str, float], rule: str) -> float:
    """One score from an answer's aspect ratings: their mean, or their minimum."""
    values = list(ratings.values())
    return min(values) if rule == "min" else sum(values) / len(values)


def aspect_request(config: LLMConfig, templates: Mapping[str, str], aspect: str, prompt: list[Mapping[str, str]],
                   answer: str) -> ChatRequest:
    """The request that rates ``answer`` on ``aspect`` (what `rate_aspects` sends first, and --dry-run counts)."""
    content = fill(templates[ASPECT_PREFIX + aspect], user_input=conversation_text(prompt), completion=answer)
    seed = derive_seed(config.seed, "aspect", aspect, content)
    return ChatRequest.of([{"role": "user", "content": content}], config, seed=seed)


async def rate_aspects(engine: Engine, templates: Mapping[str, str], aspects: Sequence[str],
                       prompt: list[Mapping[str, str]], answer: str, score_range: tuple[float, float]
                       ) -> tuple[dict[str, float] | None, str]:
    """The judge's rating of ``answer`` on each aspect; ``(None, the unreadable reply)`` if one aspect's reply does not
    parse after one follow-up."""
    low, high = score_range

    async def one(aspect: str):
        request = aspect_request(engine.config, templates, aspect, prompt, answer)
        return await ask_judge(engine, request.messages[0][1], lambda text: parse_score(text, low, high),
                               what=f"a whole number from {low:g} to {high:g}", seed=request.seed)

    results = await gather_all(*(one(aspect) for aspect in aspects))
    for value, texts in results:
        if value is None:
            return None, texts[-1]
    return {aspect: value for aspect, (value, _) in zip(aspects, results)}, ""


async def pointwise_scores(engine: Engine, templates: Mapping[str, str], aspects: Sequence[str], rule: str,
                           score_range: tuple[float, float], rows: Sequence[Mapping[str, Any]]
                           ) -> list[tuple[float, dict[str, Any]] | Reject]:
    """Each answer's combined rating and its per-aspect ratings."""
    rated = await gather_all(*(rate_aspects(engine, templates, aspects, row["prompt"], row["chosen"], score_range)
                                   for row in rows))
    out: list[tuple[float, dict[str, Any]] | Reject] = []
    for row, (ratings, bad) in zip(rows, rated):
        if ratings is None:
            out.append(Reject("judge_unparseable", f"the judge's rating is not a number in {score_range[0]:g}-"
                              f"{score_range[1]:g}, twice: {bad[:200]!r}", row))
        else:
            out.append((combine(ratings, rule), {"aspects": ratings}))
    return out


async def merge_sort(items: list[int], compare: Callable[[int, int], Awaitable[int]]) -> list[int]:
    """``items`` sorted best first by ``compare(a, b)`` (> 0: a is better, < 0: b is, 0: equal; stable on equal).

    The two halves are sorted concurrently, so the comparisons of one prompt run in parallel where the order allows.
    """
    if len(items) <= 1:
        return list(items)
    middle = len(items) // 2
    left, right = await gather_all(merge_sort(items[:middle], compare), merge_sort(items[middle:], compare))
    merged: list[int] = []
    while left and right:
        if await compare(left[0], right[0]) >= 0:
            merged.append(left.pop(0))
        else:
            merged.append(right.pop(0))
    return merged + left + right


def merge_sort_worst_case(k: int) -> int:
    """The most comparisons merge sort asks for ``k`` items (the bound the docs quote)."""
    if k <= 1:
        return 0
    depth = math.ceil(math.log2(k))
    return k * depth - 2**depth + 1


async def pairwise_scores(engines: Mapping[str, Engine], template: str, rows: Sequence[Mapping[str, Any]],
                          stats: Counter, subjects: list[list[str]]) -> list[tuple[float, dict[str, Any]]]:
    """Scores from a merge sort whose comparisons are both-order pairwise verdicts of one judge, or the majority
    verdict of several (see the module's docstring); each panel comparison's judge categories go to ``subjects``."""
    prompt = rows[0]["prompt"]
    user_input = conversation_text(prompt)
    verdicts: dict[tuple[int, int], str] = {}
    wins: Counter[int] = Counter()
    judge_wins: dict[str, Counter[int]] = {name: Counter() for name in engines}
    agreements: dict[int, list[float]] = {}
    what = "A, B or tie"

    async def verdict_of(engine: Engine, first: str, second: str) -> str:
        seed = derive_seed(engine.config.seed, "pairwise", first)
        (one, _), (two, _) = await gather_all(ask_judge(engine, first, parse_choice, what=what, seed=seed),
                                                  ask_judge(engine, second, parse_choice, what=what, seed=seed))
        verdict = "unparseable" if one is None or two is None else VERDICTS[pairwise_verdict(one, two)[0]]
        stats[verdict] += 1
        return verdict

    async def compare(a: int, b: int) -> int:
        first = fill(template, user_input=user_input, response_a=rows[a]["chosen"], response_b=rows[b]["chosen"])
        second = fill(template, user_input=user_input, response_a=rows[b]["chosen"], response_b=rows[a]["chosen"])
        given = await gather_all(*(verdict_of(engine, first, second) for engine in engines.values()))
        stats["comparisons"] += 1
        categories = [v if v in ("first", "second") else "equal" for v in given]
        for name, category in zip(engines, categories):
            if category != "equal":
                judge_wins[name][a if category == "first" else b] += 1
        verdict = majority(categories)
        if len(engines) > 1:
            subjects.append(categories)
            share = agreement(categories)
            agreements.setdefault(a, []).append(share)
            agreements.setdefault(b, []).append(share)
        verdicts[(a, b)] = verdicts[(b, a)] = verdict
        if verdict == "first":
            wins[a] += 1
            return 1
        if verdict == "second":
            wins[b] += 1
            return -1
        return 0

    order = await merge_sort(list(range(len(rows))), compare)
    scores: dict[int, float] = {}
    score = float(len(rows) - 1)
    for position, index in enumerate(order):
        if position and verdicts.get((order[position - 1], index), "first") in ("first", "second"):
            score -= 1  # not compared with the one before it, or compared and found worse
        scores[index] = score
    out = []
    for i in range(len(rows)):
        detail: dict[str, Any] = {"wins": wins[i], "compared_with": sum(1 for (a, _b) in verdicts if a == i)}
        if len(engines) > 1:
            shares = agreements.get(i)
            detail["agreement"] = round(sum(shares) / len(shares), 4) if shares else None
            detail["judges"] = {name: {"wins": judge_wins[name][i]} for name in engines}
        out.append((scores[i], detail))
    return out


def majority(categories: Sequence[str]) -> str:
    """The panel's verdict on one comparison: the category more than half the judges gave, else ``equal`` (a split
    panel cannot tell the answers apart, and `split` must not pair them)."""
    category, count = Counter(categories).most_common(1)[0]
    return category if 2 * count > len(categories) else "equal"


async def panel_scores(engines: Mapping[str, Engine], templates: Mapping[str, str], aspects: Sequence[str],
                       rule: str, score_range: tuple[float, float], rows: Sequence[Mapping[str, Any]]
                       ) -> list[tuple[float, dict[str, Any]] | Reject]:
    """Each judge's combined rating; the mean of them; and Fleiss' P_i over their rounded ratings."""
    per_judge = await gather_all(*(pointwise_scores(engine, templates, aspects, rule, score_range, rows)
                                       for engine in engines.values()))
    out: list[tuple[float, dict[str, Any]] | Reject] = []
    for i in range(len(rows)):
        results = {name: scored[i] for name, scored in zip(engines, per_judge)}
        failed = next((r for r in results.values() if isinstance(r, Reject)), None)
        if failed is not None:
            out.append(failed)
            continue
        combined = {name: value for name, (value, _) in results.items()}
        out.append((sum(combined.values()) / len(combined), {
            "judges": {name: {"score": value, **detail} for name, (value, detail) in results.items()},
            "agreement": agreement(category(v) for v in combined.values()),
        }))
    return out


def category(score: float) -> int:
    """A rating as the whole number the judges' agreement is counted on (halves round up)."""
    return math.floor(score + 0.5)


def agreement(ratings) -> float | None:
    """Fleiss' P_i: the share of ordered pairs of distinct judges that gave the same category (None for one judge)."""
    counts = Counter(ratings)
    n = sum(counts.values())
    if n < 2:
        return None
    return (sum(c * c for c in counts.values()) - n) / (n * (n - 1))


def agreement_summary(subjects: Sequence[Sequence[Hashable]], rule: str) -> dict[str, Any]:
    """A panel's agreement over a run: Fleiss' kappa and the mean per-subject P_i, rounded for the manifest, with the
    ``rule`` that says what a subject and a category are."""
    kappa = fleiss_kappa(subjects)
    agreements = [agreement(ratings) for ratings in subjects]
    return {"fleiss_kappa": None if kappa is None else round(kappa, 4),
            "mean_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None,
            "agreement_rule": rule}


def fleiss_kappa(subjects: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa over subjects each rated by the same number of raters (a list of categories per subject).

    Hand-written in a few lines: statsmodels, which has it, is not worth a dependency for one formula. None when it is
    undefined (no subject, fewer than two raters, or every rating in one category).
    """
    if not subjects or len(subjects[0]) < 2:
        return None
    n = len(subjects[0])
    totals: Counter[int] = Counter()
    for ratings in subjects:
        totals.update(ratings)
    p_mean = sum(agreement(ratings) for ratings in subjects) / len(subjects)
    p_expected = sum((count / (n * len(subjects))) ** 2 for count in totals.values())
    if p_expected == 1:
        return None
    return (p_mean - p_expected) / (1 - p_expected)
