"""`prefdata synthesize`: self-instruct style expansion of seed prompts into new data for one ChatLLaMA kind.

1. Seeds (any format `prefdata import` reads) give example user inputs. Each generation request shows a few of them,
   sampled with the run's seed, through the ``rlhf`` template and asks for new inputs.
2. Each candidate is checked in a fixed order: length (``too_short``/``too_long``), refusal, and ROUGE-L >= 0.7
   against the seeds and every input kept so far (``near_duplicate``; see `prefdata.pipeline.similarity`). Rejected
   candidates go to quarantine with their reason; the first ``n`` survivors are kept.
3. ``rlhf`` writes the prompts; ``actor`` adds a completion (``actor`` template); ``reward`` adds a completion and its
   judge score (``reward`` template, the `prefdata score` path).
Everything is ordered by request, never by arrival, so the same seeds and seed give the same rows.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
from collections.abc import Mapping
from typing import Any

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, make_row
from prefdata.jobs.score import derive_seed, score_pointwise
from prefdata.llm.batch import DryRunEstimate, items_under_way, ordered_map
from prefdata.llm.engine import ChatRequest, Engine, LLMConfig, RequestRejected
from prefdata.llm.templating import fill, load_templates, template_sha256
from prefdata.pipeline.progress import progress
from prefdata.pipeline.records import RecordLoop, Reject
from prefdata.pipeline.similarity import NearDuplicateIndex, tokens

KINDS = ("actor", "reward", "rlhf")
_NUMBERED = re.compile(r"^\s*(?:\d{1,3}\s*[.):]|[-*•])\s+(.*\S)\s*$")
_REFUSAL = re.compile(
    r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|as an AI\b|as a language model|I can(?:no|')t (?:help|assist|"
    r"comply|provide|do that|fulfil)|I am (?:not able|unable) to|I'm (?:not able|unable) to|I won'?t be able to)",
    re.IGNORECASE,
)
GENERATION_ROUNDS = 10
OVERFETCH = 1.25
GENERATION_TEMPERATURE = 0.7  # what `LLMConfig.temperature` None means here: varied enough for new prompts
SPLIT = "train"  # the one split synthesized rows go to
GENERATED = "generated"  # the "file" of generated records in quarantine.jsonl and the manifest's files


def load_seed_prompts(path: str | os.PathLike, *, format: str = "auto") -> list[str]:
    """The distinct opening user messages of the rows `prefdata import` makes of ``path`` (any supported format).

    The opening turn is a standalone request; later turns lean on the conversation before them. Records that `import`
    would quarantine are skipped here: seeds only steer the generation, nothing of them is written.
    """
    from prefdata.jobs.importer import ParsedRow, iter_parsed
    from prefdata.storage.readers import check_input_file

    check_input_file(path)
    texts = [next(m["content"] for m in item.row["prompt"] if m["role"] == "user").strip() for item in iter_parsed(path, format)
             if isinstance(item, ParsedRow)]
    seeds = list(dict.fromkeys(t for t in texts if t))
    if not seeds:
        raise PrefdataError("no usable seed prompts (every record was refused or empty)", file=str(path))
    return seeds


def parse_prompt_list(text: str) -> list[str]:
    """One candidate per numbered or bulleted line; if the reply has none, one per non-empty line."""
    lines = text.splitlines()
    numbered = [m.group(1).strip() for m in map(_NUMBERED.match, lines) if m]
    return numbered if numbered else [line.strip() for line in lines if line.strip()]


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text[:300]))


def candidate_problem(text: str, index: NearDuplicateIndex, *, min_words: int, max_words: int
                      ) -> tuple[str, str] | None:
    """The first filter a candidate prompt fails, as ``(reason, message)``, or None if it is kept."""
    words = len(tokens(text))
    if words < min_words:
        return "too_short", f"{words} word(s), fewer than --min-words {min_words}"
    if words > max_words:
        return "too_long", f"{words} words, more than --max-words {max_words}"
    if is_refusal(text):
        return "refusal", "the model refused instead of writing a request"
    match = index.match(text)
    if match is not None:
        other, similarity = match
        return "near_duplicate", f"ROUGE-L {similarity:.2f} >= {index.threshold} with: {index.text(other)[:200]!r}"
    return None


def synthesize(
    seeds: str | os.PathLike,
    out: str | os.PathLike,
    *,
    kind: str,
    n: int,
    config: LLMConfig,
    templates: str | os.PathLike | None = None,
    seeds_format: str = "auto",
    examples_per_request: int = 4,
    prompts_per_request: int = 8,
    similarity: float = 0.7,
    min_words: int = 3,
    max_words: int = 150,
    score_range: tuple[float, float] = (0.0, 10.0),
    overwrite: bool = False,
    quiet: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``n`` new rows of ``kind`` grown from ``seeds`` into ``out``; return the manifest (or, for a dry run,
    the request and cost estimate)."""
    from prefdata.storage.dataset import DatasetWriter

    config = config.with_default_temperature(GENERATION_TEMPERATURE)
    if kind not in KINDS:
        raise PrefdataError(f"--kind must be one of {', '.join(KINDS)}")
    if n < 1 or examples_per_request < 1 or prompts_per_request < 1:
        raise PrefdataError("--n, --examples-per-request and --prompts-per-request must be at least 1")
    table = load_templates(templates)
    seed_prompts = load_seed_prompts(seeds, format=seeds_format)
    job = _Job(kind, n, config, table, seed_prompts, examples_per_request, prompts_per_request, similarity, min_words,
               max_words, score_range, quiet)
    if config.dry_run:
        return asyncio.run(job.dry_run())
    with DatasetWriter(out, command="synthesize", options=options or {}, schema_id=PREFERENCE_SCHEMA_ID,
                       overwrite=overwrite) as writer:
        writer.add_input(seeds)
        asyncio.run(job.run(writer))
    return writer.manifest


class _Job:
    def __init__(self, kind, n, config: LLMConfig, templates: dict[str, str], seeds: list[str], examples_per_request,
                 prompts_per_request, similarity, min_words, max_words, score_range, quiet) -> None:
        self.kind, self.n, self.config, self.templates, self.seeds = kind, n, config, templates, seeds
        self.k, self.per_request = min(examples_per_request, len(seeds)), prompts_per_request
        self.similarity, self.min_words, self.max_words = similarity, min_words, max_words
        self.score_range, self.quiet = score_range, quiet
        self.rng = random.Random(config.seed)
        used = ["rlhf"] + (["actor"] if kind != "rlhf" else []) + (["reward"] if kind == "reward" else [])
        self.meta = {
            "model": config.model,
            "template_sha256": {name: template_sha256(templates[name]) for name in used},
            "sampling": {"temperature": config.temperature, "max_tokens": config.max_tokens, "seed": config.seed},
        }

    def generation_request(self, round_index: int, request_index: int, kept: list[str]) -> ChatRequest:
        """Show ``k`` examples: mostly seeds, and (as self-instruct does) a few inputs kept in earlier rounds."""
        from_kept = min(len(kept), self.k // 4)
        examples = self.rng.sample(self.seeds, self.k - from_kept) + self.rng.sample(kept, from_kept)
        listing = "\n".join(f"{i}. {' '.join(text.split())}" for i, text in enumerate(examples, 1))
        content = fill(self.templates["rlhf"], examples=listing, count=self.per_request)
        seed = derive_seed(self.config.seed, "rlhf", round_index, request_index)
        return ChatRequest.of([{"role": "user", "content": content}], self.config, seed=seed)

    def completion_request(self, prompt: str) -> ChatRequest:
        content = fill(self.templates["actor"], user_input=prompt)
        seed = derive_seed(self.config.seed, "actor", prompt)
        return ChatRequest.of([{"role": "user", "content": content}], self.config, seed=seed)

    async def run(self, writer) -> None:
        loop = RecordLoop(writer)  # each candidate considered is one record: a row in the end, or quarantined
        writer.split(SPLIT)  # the split exists (empty) even when every candidate is quarantined
        async with Engine(self.config) as engine:
            kept = await self._generate(engine, loop)
            if self.kind == "rlhf":
                for prompt in kept:
                    self._write(loop, prompt)
            else:
                await self._complete(engine, loop, kept)
            writer.extra["llm"] = engine.summary()
        loop.finish()

    async def _generate(self, engine: Engine, loop: RecordLoop) -> list[str]:
        writer = loop.writer
        index = NearDuplicateIndex(self.similarity)
        for seed in self.seeds:
            index.add(seed)
        kept: list[str] = []
        stats = {"generation_requests": 0, "candidates": 0, "candidates_unused": 0, "rounds": 0}
        bar = progress(None, desc=f"synthesize {self.kind}: prompts", total=self.n, quiet=self.quiet, unit="prompt")
        for round_index in range(GENERATION_ROUNDS):
            if len(kept) >= self.n:
                break
            stats["rounds"] += 1
            count = math.ceil((self.n - len(kept)) * OVERFETCH / self.per_request)
            requests = [self.generation_request(round_index, i, kept) for i in range(count)]
            stats["generation_requests"] += count
            async for request_index, result in ordered_map(
                    enumerate(requests), lambda item: self._ask(engine, item), window=items_under_way(self.config.concurrency, 1)):
                if isinstance(result, RequestRejected):
                    writer.warn(f"generation request {round_index}/{request_index} refused: HTTP {result.status}")
                    continue
                for candidate in parse_prompt_list(result.text):
                    stats["candidates"] += 1
                    if len(kept) >= self.n:
                        stats["candidates_unused"] += 1
                        continue
                    problem = candidate_problem(candidate, index, min_words=self.min_words, max_words=self.max_words)
                    if problem is not None:
                        record = {"prompt": candidate, "round": round_index, "request": request_index}
                        loop.quarantine(Reject(*problem, record, file=GENERATED, index=stats["candidates"] - 1))
                        continue
                    index.add(candidate)
                    kept.append(candidate)
                    bar.update(1)
        bar.close()
        stats["near_duplicate_comparisons"] = index.comparisons
        writer.extra["synthesis"] = {"kind": self.kind, "n_requested": self.n, "kept": len(kept),
                                     "seeds": len(self.seeds), **stats, **self.meta}
        if len(kept) < self.n:
            writer.warn(f"only {len(kept)} of {self.n} prompts survived the filters after {GENERATION_ROUNDS} rounds")
        return kept

    @staticmethod
    async def _ask(engine: Engine, item: tuple[int, ChatRequest]):
        request_index, request = item
        try:
            return request_index, await engine.complete(request)
        except RequestRejected as e:
            return request_index, e

    async def _complete(self, engine: Engine, loop: RecordLoop, kept: list[str]) -> None:
        async def complete(prompt: str):
            try:
                result = await engine.complete(self.completion_request(prompt))
            except RequestRejected as e:
                return prompt, None, Reject("llm_rejected", f"the server refused the request (HTTP {e.status}): "
                                            f"{e.message}", {"prompt": prompt})
            reply = result.text.strip()
            if not reply:
                return prompt, None, Reject("empty_reply", "the model returned an empty completion", {"prompt": prompt})
            if result.finish_reason == "length":
                return prompt, None, Reject("truncated", "the completion was cut off at --max-tokens "
                                            f"{self.config.max_tokens}", {"prompt": prompt})
            if is_refusal(reply):
                return prompt, None, Reject("refusal", "the model refused to complete the request", {"prompt": prompt})
            if self.kind != "reward":
                return prompt, (reply, None), None
            user = [{"role": "user", "content": prompt}]
            value, texts = await score_pointwise(engine, self.templates["reward"], user, reply,
                                                 score_range=self.score_range)
            if value is None:
                return prompt, None, Reject("judge_unparseable", "the judge's reply is not a score, twice: "
                                            f"{texts[-1][:200]!r}", {"prompt": prompt})
            return prompt, (reply, value), None

        bar = progress(None, desc=f"synthesize {self.kind}: completions", total=len(kept), quiet=self.quiet, unit="row")
        position = 0
        async for prompt, done, problem in ordered_map(kept, complete, window=items_under_way(self.config.concurrency, 1)):
            if problem is not None:
                loop.quarantine(problem.at(file=GENERATED, index=position))
            else:
                self._write(loop, prompt, *done)
            position += 1
            bar.update(1)
        bar.close()

    def _write(self, loop: RecordLoop, prompt: str, completion: str | None = None, score: float | None = None) -> None:
        try:
            row = make_row([{"role": "user", "content": prompt}], completion, source=f"synth/{self.kind}",
                           chosen_score=score, meta=self.meta)
        except RowError as e:
            loop.quarantine(Reject.of(e, {"prompt": prompt, "completion": completion}, file=GENERATED))
            return
        loop.row(row, SPLIT, GENERATED)

    async def dry_run(self) -> dict[str, Any]:
        estimate = DryRunEstimate()
        async with Engine(self.config) as engine:
            count = math.ceil(self.n * OVERFETCH / self.per_request)
            for i in range(count):
                estimate.add(engine, self.generation_request(0, i, []))
            estimate.notes.append(f"first round: {count} generation request(s) asking for {self.per_request} each; "
                                  "filtered candidates may need further rounds")
            if self.kind != "rlhf":
                typical = sorted(self.seeds, key=len)[len(self.seeds) // 2]
                estimate.add(engine, self.completion_request(typical), count=self.n)
                estimate.notes.append(f"{self.n} completion request(s), sized like a median seed")
            if self.kind == "reward":
                content = fill(self.templates["reward"], user_input=typical, completion="x" * 4 * self.config.max_tokens)
                estimate.add(engine, ChatRequest.of([{"role": "user", "content": content}], self.config), count=self.n)
                estimate.notes.append(f"{self.n} judge request(s); unparseable replies add one retry each")
            return estimate.as_dict(engine)
