"""`prefdata rank`: score and rank the answers of each prompt (a `prefdata generate` output) with an LLM judge, a
panel of judges, or a trained reward model; nothing of the ranking is lost.

Answers of one prompt are the rows with a reply and no rejected reply that share split, group and prompt. Each ranked
answer is written back unchanged but for ``chosen_score`` (the ranking score: higher is better) and ``meta.rank``:
the ranker and its provenance (judge model(s), aspects, template sha256, combine rule; or the reward model's path and
sha256), the answer's ``rank`` (1 = best; equal scores share a rank) ``of`` how many, and what the ranker said
(aspect ratings, wins, per-judge ratings and agreement). A score it held before is kept as ``meta.prior_chosen_score``.
Other rows (pairs, prompt-only rows) pass through unchanged and are counted as ``unranked``. `prefdata split` then
makes pairs of the scored answers (``--pairs``, ``--min-margin``). Rankers: see `prefdata.jobs.rank_judges`, and
`RewardScorer` here for a reward model (its torch code lives in ``trainers/``: the data layer never imports torch).
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, canonical_json, make_row, row_meta
from prefdata.jobs import rank_judges
from prefdata.jobs.generate import parse_policies
from prefdata.jobs.score import JUDGE_TEMPERATURE, conversation_text
from prefdata.llm.batch import DryRunEstimate, engines_for, items_under_way, ordered_map
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig, RequestRejected
from prefdata.llm.templating import ASPECT_PREFIX, aspect_names, fill, load_templates, template_sha256
from prefdata.pipeline.progress import progress
from prefdata.pipeline.records import RecordLoop, Reject

RANKERS = ("judge", "pairwise", "panel", "reward-model")
REWARD_CHUNK = 256  # answers handed to the reward model at once (it batches them further itself)


class RewardScorer(Protocol):
    """What ``--by reward-model`` needs: scores for (prompt, answer) pairs, and what to record about the model."""

    def describe(self) -> dict[str, Any]: ...

    def score(self, items: Sequence[tuple[list[dict[str, str]], str]]) -> list[float]: ...


@dataclass
class Group:
    """The answers to one prompt: their places in the input and the rows."""

    split: str
    positions: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def rankable(row: Mapping[str, Any]) -> bool:
    """An answer: one plain reply and nothing on the rejected side (a `generate` row, or a scored row being ranked
    again); an unpaired or multi-message row of `prefdata.preference/2` is not one."""
    return (isinstance(row.get("chosen"), str) and row.get("rejected") is None and not row.get("rejected_turns")
            and row.get("label") is None)


def read_groups(directory: str | os.PathLike) -> tuple[list[tuple[str, dict[str, Any]]], list[Group]]:
    """Every row in stored order, and the answers grouped by (split, group, prompt) in order of first appearance."""
    from prefdata.storage.dataset import iter_rows

    rows = list(iter_rows(directory))
    groups: dict[tuple[str, str, str], Group] = {}
    for position, (split, row) in enumerate(rows):
        if rankable(row):
            group = groups.setdefault((split, row["group"], canonical_json(row["prompt"])), Group(split))
            group.positions.append(position)
            group.rows.append(row)
    return rows, list(groups.values())


def ranks(scores: Sequence[float]) -> list[int]:
    """Competition ranks, best first: scores 9, 7, 9, 3 rank 1, 3, 1, 4."""
    return [1 + sum(other > score for other in scores) for score in scores]


def rank(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    *,
    by: str,
    config: LLMConfig | None = None,
    judges: Sequence[str] = (),
    aspects: Sequence[str] | None = None,
    combine: str = "mean",
    score_range: tuple[float, float] = rank_judges.ASPECT_RANGE,
    templates: str | os.PathLike | None = None,
    scorer: RewardScorer | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rank the answers of ``directory`` into ``out``; return the manifest.

    ``by``: ``judge`` (one judge, pointwise per aspect), ``pairwise`` (A/B in both orders: one judge, or several voting
    per comparison), ``panel`` (each of ``judges`` pointwise) — these need ``config`` (engine settings) and ``judges``
    (``NAME`` or ``NAME=URL``) — or
    ``reward-model`` with a ``scorer`` (`trainers.components.reward_scoring.RewardModelScorer`).
    """
    from prefdata.storage.dataset import DatasetWriter, read_manifest

    method = _method(by, config, judges, aspects, combine, score_range, templates, scorer)
    manifest = read_manifest(directory)
    rows, groups = read_groups(directory)
    if config is not None and config.dry_run:
        if not isinstance(method, _LLMMethod):
            raise PrefdataError("--dry-run estimates LLM requests; --by reward-model sends none", field="--dry-run")
        return asyncio.run(method.dry_run(groups))
    with DatasetWriter(out, command="rank", options=options or {}, schema_id=PREFERENCE_SCHEMA_ID,
                       overwrite=overwrite) as writer:
        for name in manifest.get("splits", {}):
            writer.split(name)
        outcomes, summary = asyncio.run(method.run(groups, quiet))
        loop, file, in_split = RecordLoop(writer), str(directory), Counter()
        for position, (split, row) in enumerate(rows):
            outcome = outcomes.get(position, row)
            if isinstance(outcome, Reject):  # placed as `load(DIR)[split][index]`
                loop.quarantine(outcome.at(file=f"{file}/{split}", index=in_split[split]))
            else:
                loop.row(outcome, split, file)
            in_split[split] += 1
        loop.finish()
        unranked = len(rows) - sum(len(g.rows) for g in groups)
        writer.extra["ranked_from"] = {"path": str(directory), "splits": {
            name: split.get("fingerprint") for name, split in manifest.get("splits", {}).items()}}
        writer.extra["rank"] = {**method.provenance, "prompts": len(groups),
                                "answers": sum(len(g.rows) for g in groups), "unranked": unranked, **summary}
        if "llm" in summary:
            writer.extra["llm"] = writer.extra["rank"].pop("llm")
        if unranked:
            writer.warn(f"{unranked} row(s) passed through unranked (only answers: a reply without a rejected one)")
    return writer.manifest


def _method(by, config, judges, aspects, combine, score_range, templates, scorer) -> _Method:
    if by not in RANKERS:
        raise PrefdataError(f"unknown ranker {by!r}; choose one of {', '.join(RANKERS)}", field="--by")
    if by == "reward-model":
        if scorer is None:
            raise PrefdataError("--by reward-model needs --reward-model DIR", field="--reward-model")
        return _RewardMethod(scorer)
    if config is None or not judges:
        raise PrefdataError(f"--by {by} needs a judge: --model NAME (or NAME=URL)", field="--model")
    policies = parse_policies(judges)
    if by == "judge" and len(policies) > 1:
        raise PrefdataError("--by judge takes one judge; several are --by panel (pointwise) or --by pairwise",
                            field="--model")
    if by == "panel" and len(policies) < 2:
        raise PrefdataError("--by panel needs at least two judges (--model A --model B …)", field="--model")
    if combine not in rank_judges.COMBINE_RULES:
        raise PrefdataError(f"unknown rule {combine!r}; choose one of {', '.join(rank_judges.COMBINE_RULES)}",
                            field="--combine")
    table = load_templates(templates)
    config = config.with_default_temperature(JUDGE_TEMPERATURE)
    engines = {p.name: replace(config, model=p.name, base_url=p.base_url or config.base_url) for p in policies}
    sampling = {"temperature": config.temperature, "max_tokens": config.max_tokens, "seed": config.seed}
    several = len(engines) > 1
    judged = {"judges" if several else "model": list(engines) if several else policies[0].name,
              "base_url_host": sorted({c.base_url_host() for c in engines.values()}), "sampling": sampling}
    if by == "pairwise":
        if "judge_pairwise" not in table:
            raise PrefdataError("the 'judge_pairwise' template is missing", file=str(templates), field="judge_pairwise")
        return _PairwiseMethod(engines, table["judge_pairwise"], {
            "by": by, **judged, "template": "judge_pairwise", "template_sha256": template_sha256(table["judge_pairwise"]),
            "tie_policy": "a tie, an inconsistent or an unreadable verdict counts as equal",
            **({"panel_rule": "a comparison's verdict is the one more than half the judges gave, else equal"}
               if several else {})})
    chosen = list(aspects) if aspects else aspect_names(table)
    missing = [a for a in chosen if ASPECT_PREFIX + a not in table]
    if not chosen or missing:
        raise PrefdataError(f"no template for aspect(s) {', '.join(missing) or '(none defined)'}: add "
                            f"'{ASPECT_PREFIX}<name>' templates", field="--aspects")
    return _JudgeMethod(engines, table, chosen, combine, score_range, {
        "by": by, **judged, "aspects": chosen, "combine": combine, "score_range": list(score_range),
        "template_sha256": {a: template_sha256(table[ASPECT_PREFIX + a]) for a in chosen}})


Outcome = tuple[float, dict[str, Any]] | Reject


class _Method(ABC):
    """A ranker: scores the answers of every group (`run`) and turns scores into ranked rows (`ranked_rows`)."""

    provenance: dict[str, Any]

    @abstractmethod
    async def run(self, groups: list[Group], quiet: bool) -> tuple[dict[int, dict[str, Any] | Reject], dict]:
        """``({input position: ranked row or Reject}, summary for the manifest)``."""

    def ranked_rows(self, group: Group, outcomes: list[Outcome]) -> dict[int, dict[str, Any] | Reject]:
        """The rows of ``group`` with their score and ``meta.rank`` (rank among the answers that got a score)."""
        scores = [o[0] for o in outcomes if not isinstance(o, Reject)]
        places = iter(ranks(scores))
        done: dict[int, dict[str, Any] | Reject] = {}
        for position, row, outcome in zip(group.positions, group.rows, outcomes):
            if isinstance(outcome, Reject):
                done[position] = outcome
                continue
            score, detail = outcome
            meta = row_meta(row)
            if row.get("chosen_score") is not None:
                meta["prior_chosen_score"] = row["chosen_score"]
            meta["rank"] = {**self.provenance, "score": score, "rank": next(places), "of": len(scores), **detail}
            try:
                done[position] = make_row(row["prompt"], row["chosen"], source=row["source"], group=row["group"],
                                          chosen_score=score, meta=meta)
            except RowError as e:
                done[position] = Reject.of(e, row)
        return done


class _LLMMethod(_Method):
    """Runs one ranker coroutine per prompt through the engine(s), prompts in input order."""

    def __init__(self, configs: dict[str, LLMConfig], provenance: dict[str, Any]) -> None:
        self.configs, self.provenance = configs, provenance
        self.stats: Counter[str] = Counter()

    @abstractmethod
    async def score_group(self, engines: dict[str, Engine], rows: list[dict[str, Any]]) -> list[Outcome]:
        """A score (or a `Reject`) for each answer to one prompt."""

    def requests_per_answer(self) -> int:
        return 1

    async def run(self, groups, quiet):
        done: dict[int, dict[str, Any] | Reject] = {}
        async with engines_for(self.configs) as engines:
            async def one(group: Group):
                try:
                    return group, await self.score_group(engines, group.rows)
                except RequestRejected as e:
                    reason = f"the server refused a judge request (HTTP {e.status}): {e.message}"
                    return group, [Reject("llm_rejected", reason, row) for row in group.rows]

            per_group = max(1, self.requests_per_answer() * max((len(g.rows) for g in groups), default=1))
            concurrency = next(iter(self.configs.values())).concurrency
            window = items_under_way(concurrency * len(engines), per_group)
            bar = progress(None, desc="rank", total=len(groups), quiet=quiet, unit="prompt")
            async for group, outcomes in ordered_map(groups, one, window=window):
                done.update(self.ranked_rows(group, outcomes))
                bar.update(1)
            bar.close()
            llm = {**next(iter(engines.values())).summary(), "model": list(engines)}
        return done, {"llm": llm, **self.finish(done)}

    async def dry_run(self, groups: list[Group]) -> dict[str, Any]:
        """What `run` would send (the first ask of each request; unreadable replies add one follow-up each)."""
        estimate = DryRunEstimate()
        async with engines_for(self.configs) as engines:
            for group in groups:
                self.estimate(engines, group.rows, estimate)
            estimate.notes.append("an unreadable judge reply adds one follow-up request")
            return {**estimate.as_dict(next(iter(engines.values()))), "model": list(engines)}

    @abstractmethod
    def estimate(self, engines: dict[str, Engine], rows: list[dict[str, Any]], estimate: DryRunEstimate) -> None:
        """Add the requests that ranking ``rows`` (one prompt's answers) would send."""

    @abstractmethod
    def finish(self, done: dict[int, dict[str, Any] | Reject]) -> dict[str, Any]:
        """What the manifest's ``rank`` block adds about this run (counts, agreement)."""


class _JudgeMethod(_LLMMethod):
    """``judge`` (one engine) and ``panel`` (several): pointwise ratings per aspect."""

    def __init__(self, configs, templates, aspects, rule, score_range, provenance) -> None:
        super().__init__(configs, provenance)
        self.templates, self.aspects, self.rule, self.score_range = templates, aspects, rule, score_range

    def requests_per_answer(self) -> int:
        return len(self.aspects) * len(self.configs)

    def estimate(self, engines, rows, estimate):
        for engine in engines.values():
            for row in rows:
                for aspect in self.aspects:
                    estimate.add(engine, rank_judges.aspect_request(engine.config, self.templates, aspect,
                                                                    row["prompt"], row["chosen"]))

    async def score_group(self, engines, rows):
        if len(engines) == 1:
            engine = next(iter(engines.values()))
            return await rank_judges.pointwise_scores(engine, self.templates, self.aspects, self.rule,
                                                      self.score_range, rows)
        return await rank_judges.panel_scores(engines, self.templates, self.aspects, self.rule, self.score_range,
                                              rows)

    def finish(self, done):
        if len(self.configs) == 1:
            return {}
        subjects = []
        for outcome in done.values():
            if isinstance(outcome, Reject):
                continue
            judges = row_meta(outcome)["rank"]["judges"]
            subjects.append([rank_judges.category(judges[name]["score"]) for name in self.configs])
        summary = rank_judges.agreement_summary(
            subjects, "Fleiss' P_i over each judge's combined rating rounded to a whole number")
        return {"fleiss_kappa": summary.pop("fleiss_kappa"), "answers_rated_by_all": len(subjects), **summary}


class _PairwiseMethod(_LLMMethod):
    """``pairwise``: one judge, or a panel of judges voting on each comparison."""

    def __init__(self, configs, template: str, provenance) -> None:
        super().__init__(configs, provenance)
        self.template = template
        self.subjects: list[list[str]] = []  # a panel's categories per comparison, for Fleiss' kappa

    def requests_per_answer(self) -> int:
        return 2 * len(self.configs)

    def estimate(self, engines, rows, estimate):
        """At most two requests per comparison of the merge sort's worst case, each sized like the first two answers'."""
        if len(rows) < 2:
            return
        content = fill(self.template, user_input=conversation_text(rows[0]["prompt"]), response_a=rows[0]["chosen"],
                       response_b=rows[1]["chosen"])
        for engine in engines.values():
            request = ChatRequest.of([{"role": "user", "content": content}], engine.config)
            estimate.add(engine, request, count=2 * rank_judges.merge_sort_worst_case(len(rows)))

    async def score_group(self, engines, rows):
        self.stats["comparisons_all_pairs"] += len(rows) * (len(rows) - 1) // 2
        return await rank_judges.pairwise_scores(engines, self.template, rows, self.stats, self.subjects)

    def finish(self, done):
        asked = self.stats["comparisons"]
        verdicts = asked * len(self.configs)  # one per judge per comparison
        summary = {"comparisons": asked, "comparisons_all_pairs": self.stats["comparisons_all_pairs"],
                   "verdicts": {v: self.stats[v] for v in rank_judges.VERDICT_COUNTS},
                   "consistency": round(1 - self.stats["inconsistent"] / verdicts, 4) if verdicts else None}
        if len(self.configs) > 1:
            panel = Counter(rank_judges.majority(categories) for categories in self.subjects)
            summary["panel_verdicts"] = {v: panel[v] for v in rank_judges.PANEL_VERDICTS}
            summary.update(rank_judges.agreement_summary(
                self.subjects, "Fleiss' P_i over the judges' first/second/equal verdicts of each comparison"))
        return summary


class _RewardMethod(_Method):
    """A reward model scores every answer, in chunks of `REWARD_CHUNK` (the scorer batches within a chunk)."""

    def __init__(self, scorer: RewardScorer) -> None:
        self.scorer = scorer
        self.provenance = {"by": "reward-model", **scorer.describe()}

    async def run(self, groups, quiet):
        done: dict[int, dict[str, Any] | Reject] = {}
        bar = progress(None, desc="rank", total=sum(len(g.rows) for g in groups), quiet=quiet, unit="answer")
        chunk: list[Group] = []
        for i, group in enumerate(groups):
            chunk.append(group)
            if sum(len(g.rows) for g in chunk) >= REWARD_CHUNK or i == len(groups) - 1:
                items = [(row["prompt"], row["chosen"]) for g in chunk for row in g.rows]
                scores = iter(self.scorer.score(items))
                for g in chunk:
                    done.update(self.ranked_rows(g, [(next(scores), {}) for _ in g.rows]))
                bar.update(len(items))
                chunk = []
        bar.close()
        return done, {}
