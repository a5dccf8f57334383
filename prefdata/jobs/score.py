"""`prefdata score`: an LLM judge scores replies (pointwise) or compares pairs (pairwise, both orders).

Pointwise fills the ``reward`` template per reply and writes ``chosen_score``/``rejected_score``. Pairwise asks the
``judge_pairwise`` template twice per pair with the replies swapped, so a judge that favours a position cancels out;
only a verdict given in both orders counts. Judge replies are parsed strictly (a bare number in range, ``0`` included;
``A``/``B``/``tie``): an unparseable reply is asked again once, then the row is quarantined as ``judge_unparseable``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from prefdata.contract.errors import RowError
from prefdata.contract.render import render
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, Side, make_row, reply, row_kind, row_meta, short_hash
from prefdata.llm.batch import DryRunEstimate, gather_all, items_under_way, ordered_map
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig, RequestRejected
from prefdata.llm.templating import fill, load_templates, template_sha256
from prefdata.pipeline.progress import progress
from prefdata.pipeline.records import RecordLoop, Reject

_NUMBER = re.compile(
    r"^\s*(?:score\s*[:=]?\s*)?\**([-+]?\d+(?:\.\d+)?)\**\s*(?:/\s*10|out of 10)?\s*\.?\s*$", re.IGNORECASE
)
_CHOICE = re.compile(r"^\s*(?:reply\s+|response\s+)?\**(a|b|tie)\**\s*\.?\s*$", re.IGNORECASE)
FOLLOW_UP = "Your answer could not be read. Answer again with only {what}, nothing else."
JUDGE_TEMPERATURE = 0.0  # what `LLMConfig.temperature` None means here: a judge should be as repeatable as it can


def parse_score(text: str, low: float = 0.0, high: float = 10.0) -> float | None:
    """The judge's score if the reply is just a number within ``[low, high]`` (``0`` is a valid score), else None."""
    match = _NUMBER.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value if low <= value <= high else None


def parse_choice(text: str) -> str | None:
    """``"A"``, ``"B"`` or ``"tie"`` if that is all the reply says, else None."""
    match = _CHOICE.match(text)
    if not match:
        return None
    choice = match.group(1)
    return "tie" if choice.lower() == "tie" else choice.upper()


def derive_seed(*parts: Any) -> int:
    """A per-request seed from the run's seed and what the request is for: stable across runs and processes."""
    return int(short_hash(list(parts)), 16) % 2**31


def conversation_text(prompt: list[Mapping[str, str]]) -> str:
    """What the judge sees as the user input: the message itself for one turn, the transcript for several."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return render(prompt)


def reply_text(row: Mapping[str, Any], side: Side) -> str | None:
    """What the judge reads as a reply: the text, or a reply stored as turns (tool calls and results included) as the
    dschat template renders it after the prompt."""
    value = reply(row, side)
    if value is None or isinstance(value, str):
        return value
    head = render(row["prompt"])
    return render(row["prompt"], value)[len(head):].strip()


async def ask_judge(engine: Engine, content: str, parse, *, what: str, seed: int) -> tuple[Any, list[str]]:
    """Ask once; if the reply does not parse, ask once more (a distinct request), then give up with None."""
    messages = [{"role": "user", "content": content}]
    request = ChatRequest.of(messages, engine.config, seed=seed)
    first = await engine.complete(request)
    value = parse(first.text)
    if value is not None:
        return value, [first.text]
    retry = messages + [{"role": "assistant", "content": first.text},
                        {"role": "user", "content": FOLLOW_UP.format(what=what)}]
    second = await engine.complete(ChatRequest.of(retry, engine.config, seed=seed, nonce="retry"))
    return parse(second.text), [first.text, second.text]


async def score_pointwise(engine: Engine, template: str, prompt: list[Mapping[str, str]], reply: str, *,
                          score_range: tuple[float, float]) -> tuple[float | None, list[str]]:
    content = fill(template, user_input=conversation_text(prompt), completion=reply)
    seed = derive_seed(engine.config.seed, "reward", content)
    low, high = score_range
    return await ask_judge(engine, content, lambda text: parse_score(text, low, high),
                           what=f"a number from {low:g} to {high:g}", seed=seed)


def _pairwise_prompts(template: str, prompt: list[Mapping[str, str]], chosen: str, rejected: str) -> tuple[str, str]:
    user_input = conversation_text(prompt)
    return (fill(template, user_input=user_input, response_a=chosen, response_b=rejected),
            fill(template, user_input=user_input, response_a=rejected, response_b=chosen))


def pairwise_verdict(first: str, second: str) -> tuple[str, float]:
    """Combine the two orders. ``first`` judged (A=chosen, B=rejected); ``second`` judged them swapped.

    Returns the verdict (``chosen``/``rejected`` when both orders agree, ``tie`` when both say tie, else
    ``inconsistent``: the judge followed the position) and the chosen reply's share of the votes (0, 0.25 … 1).
    """
    vote = {("A", 1): 1, ("B", 1): -1, ("A", 2): -1, ("B", 2): 1}
    v1, v2 = vote.get((first, 1), 0), vote.get((second, 2), 0)
    share = (v1 + v2 + 2) / 4
    if v1 == v2 == 1:
        return "chosen", share
    if v1 == v2 == -1:
        return "rejected", share
    if v1 == v2 == 0:
        return "tie", share
    return "inconsistent", share


def score(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: LLMConfig,
    templates: str | os.PathLike | None = None,
    pairwise: bool = False,
    relabel: bool = False,
    score_range: tuple[float, float] = (0.0, 10.0),
    overwrite: bool = False,
    quiet: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score every row of ``directory`` into ``out`` (same splits, same order); return the manifest.

    With ``config.dry_run`` nothing is sent or written: the request count and token/cost estimate are returned.
    """
    from prefdata.contract.errors import PrefdataError
    from prefdata.storage.dataset import DatasetWriter, read_manifest

    config = config.with_default_temperature(JUDGE_TEMPERATURE)
    if relabel and not pairwise:
        raise PrefdataError("--relabel needs --pairwise: only a verdict given in both orders is trusted to relabel")
    manifest = read_manifest(directory)
    table = load_templates(templates)
    key = "judge_pairwise" if pairwise else "reward"
    if key not in table:
        raise PrefdataError(f"the {key!r} template is missing", file=str(templates), field=key)
    template = table[key]
    judge_meta = {
        "model": config.model, "mode": "pairwise" if pairwise else "pointwise", "template": key,
        "template_sha256": template_sha256(template),
        "sampling": {"temperature": config.temperature, "max_tokens": config.max_tokens, "seed": config.seed},
    }
    total = sum(split["rows"] for split in manifest.get("splits", {}).values()) or None
    if config.dry_run:
        return asyncio.run(_dry_run(directory, config, template, pairwise, total))
    stats: Counter[str] = Counter()
    with DatasetWriter(out, command="score", options=options or {}, schema_id=PREFERENCE_SCHEMA_ID,
                       overwrite=overwrite) as writer:
        for name in manifest.get("splits", {}):  # every input split is an output split, even if all is quarantined
            writer.split(name)
        asyncio.run(_score_rows(directory, writer, config, template, judge_meta, pairwise, relabel, score_range,
                                stats, total, quiet))
        writer.extra["scored_from"] = {"path": str(directory), "splits": {
            name: split.get("fingerprint") for name, split in manifest.get("splits", {}).items()}}
        writer.extra["judge"] = _judge_summary(judge_meta, stats, pairwise, relabel)
        if stats["unscored"]:
            kind = "pairs" if pairwise else "rows with a reply"
            writer.warn(f"{stats['unscored']} row(s) passed through unscored (only {kind} are judged)")
    return writer.manifest


def _judge_summary(judge_meta: dict[str, Any], stats: Counter[str], pairwise: bool, relabel: bool) -> dict[str, Any]:
    summary = {**judge_meta, "scored": stats["scored"], "unscored": stats["unscored"],
               "unparseable": stats["unparseable"], "retried_unparseable": stats["retried"]}
    if pairwise:
        judged = stats["scored"]
        verdicts = {v: stats[f"verdict_{v}"] for v in ("chosen", "rejected", "tie", "inconsistent")}
        summary["verdicts"] = verdicts
        summary["agreement"] = round(verdicts["chosen"] / judged, 4) if judged else None
        summary["consistency"] = round((judged - verdicts["inconsistent"]) / judged, 4) if judged else None
        summary["relabeled"] = stats["relabeled"] if relabel else 0
    return summary


async def _score_rows(directory, writer, config, template, judge_meta, pairwise, relabel, score_range, stats, total,
                      quiet) -> None:
    from prefdata.storage.dataset import iter_rows

    async with Engine(config) as engine:
        async def judge(item: tuple[int, str, dict[str, Any]]):
            index, split, row = item
            try:
                if pairwise:
                    return index, split, await _judge_pair(engine, template, row, judge_meta, relabel, stats)
                return index, split, await _judge_points(engine, template, row, judge_meta, score_range, stats)
            except RequestRejected as e:
                return index, split, Reject("llm_rejected", f"the server refused the request (HTTP {e.status}): "
                                            f"{e.message}", row)

        bar = progress(None, desc="score", total=total, quiet=quiet, unit="row")
        items = ((i, split, row) for i, (split, row) in enumerate(iter_rows(directory)))
        loop, file = RecordLoop(writer), str(directory)
        try:
            async for index, split, result in ordered_map(items, judge, window=items_under_way(config.concurrency, 1)):
                if isinstance(result, Reject):
                    loop.quarantine(result.at(file=file, index=index))
                else:
                    loop.row(result, split, file)
                bar.update(1)
        finally:
            bar.close()
        loop.finish()
        writer.extra["llm"] = engine.summary()


def _rebuild(row: dict[str, Any], meta: dict[str, Any], *, chosen: Any, rejected: Any,
             chosen_score: float | None, rejected_score: float | None) -> dict[str, Any] | Reject:
    try:  # replies as stored (text or turns) and the label of an unpaired row travel unchanged
        return make_row(row["prompt"], chosen, rejected, source=row["source"], group=row["group"],
                        chosen_score=chosen_score, rejected_score=rejected_score, meta=meta, label=row.get("label"))
    except RowError as e:
        return Reject.of(e, row)


async def _judge_points(engine, template, row, judge_meta, score_range, stats) -> dict[str, Any] | Reject:
    sides = [side for side in ("chosen", "rejected") if reply_text(row, side) is not None]
    if not sides or (sides == ["rejected"] and row.get("label") is None):
        stats["unscored"] += 1
        return row
    results = await gather_all(*(score_pointwise(engine, template, row["prompt"], reply_text(row, side),
                                                      score_range=score_range) for side in sides))
    stats["retried"] += sum(len(texts) > 1 for _, texts in results)
    for (value, texts), field in zip(results, sides):
        if value is None:
            stats["unparseable"] += 1
            return Reject("judge_unparseable", f"the judge's reply for {field} is not a score, twice: "
                          f"{texts[-1][:200]!r}", row)
    meta = row_meta(row)
    for field in ("chosen_score", "rejected_score"):
        if row.get(field) is not None:
            meta[f"prior_{field}"] = row[field]
    meta["judge"] = judge_meta
    stats["scored"] += 1
    scores = dict(zip(sides, (value for value, _ in results)))
    return _rebuild(row, meta, chosen=reply(row, "chosen"), rejected=reply(row, "rejected"),
                    chosen_score=scores.get("chosen"), rejected_score=scores.get("rejected"))


async def _judge_pair(engine, template, row, judge_meta, relabel, stats) -> dict[str, Any] | Reject:
    if row_kind(row) != "pair":
        stats["unscored"] += 1
        return row
    first, second = _pairwise_prompts(template, row["prompt"], reply_text(row, "chosen"), reply_text(row, "rejected"))
    what = "A, B or tie"
    seed = derive_seed(engine.config.seed, "pairwise", first)
    results = await gather_all(ask_judge(engine, first, parse_choice, what=what, seed=seed),
                                   ask_judge(engine, second, parse_choice, what=what, seed=seed))
    stats["retried"] += sum(len(texts) > 1 for _, texts in results)
    if any(choice is None for choice, _ in results):
        stats["unparseable"] += 1
        bad = next(texts[-1] for choice, texts in results if choice is None)
        return Reject("judge_unparseable", f"the judge's pairwise reply is not A, B or tie, twice: {bad[:200]!r}", row)
    verdict, share = pairwise_verdict(results[0][0], results[1][0])
    stats["scored"] += 1
    stats[f"verdict_{verdict}"] += 1
    meta = row_meta(row)
    for field in ("chosen_score", "rejected_score"):
        if row.get(field) is not None:
            meta[f"prior_{field}"] = row[field]
    meta["judge"] = {**judge_meta, "votes": [results[0][0], results[1][0]], "verdict": verdict}
    chosen, rejected, chosen_score, rejected_score = reply(row, "chosen"), reply(row, "rejected"), share, 1 - share
    if relabel and verdict == "rejected":
        chosen, rejected, chosen_score, rejected_score = rejected, chosen, rejected_score, chosen_score
        meta["relabeled"] = True
        stats["relabeled"] += 1
    return _rebuild(row, meta, chosen=chosen, rejected=rejected, chosen_score=chosen_score,
                    rejected_score=rejected_score)


async def _dry_run(directory, config: LLMConfig, template: str, pairwise: bool, total: int | None) -> dict[str, Any]:
    from prefdata.storage.dataset import iter_rows

    estimate = DryRunEstimate()
    async with Engine(config) as engine:
        for _split, row in iter_rows(directory):
            if pairwise:
                if row_kind(row) != "pair":
                    continue
                prompts = _pairwise_prompts(template, row["prompt"], reply_text(row, "chosen"),
                                            reply_text(row, "rejected"))
                for content in prompts:
                    seed = derive_seed(config.seed, "pairwise", prompts[0])
                    estimate.add(engine, ChatRequest.of([{"role": "user", "content": content}], config, seed=seed))
                continue
            for text in (reply_text(row, "chosen"), reply_text(row, "rejected")):
                if text is None:
                    continue
                content = fill(template, user_input=conversation_text(row["prompt"]), completion=text)
                seed = derive_seed(config.seed, "reward", content)
                estimate.add(engine, ChatRequest.of([{"role": "user", "content": content}], config, seed=seed))
        estimate.notes.append("unparseable judge replies would add one retry request each")
        return estimate.as_dict(engine)
