"""`prefdata generate`: K answers per prompt from one or several OpenAI-compatible policies (InstructGPT phase 2 data).

Each answer is stored as an ordinary row of the canonical schema: the prompt, ``chosen`` = the answer, no score yet,
``group`` = the prompt's group (so every answer of one prompt lands in one phase), and ``meta.generate`` = where it
came from: policy name, base URL host (never the URL, never a key), seed, sampling parameters, template and its sha256,
answer index. `prefdata rank` then fills ``chosen_score``; `prefdata split` turns the scored answers into pairs.

Every answer requested is one record: it becomes a row, or is quarantined with a reason (``empty_reply``,
``truncated`` at ``--max-tokens``, ``refusal``, ``duplicate_sibling`` = the same text as an earlier answer to the same
prompt, ``llm_rejected``), so ``records_in = prompts x policies x K = rows_out + quarantined``.
Requests go through the engine of `synthesize`/`score`: cache, concurrency, --rpm/--tpm, retries, --max-cost,
--dry-run. Answers are written in (prompt, policy, answer index) order, never arrival order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, canonical_json, make_row
from prefdata.jobs.score import conversation_text, derive_seed
from prefdata.jobs.synthesize import is_refusal
from prefdata.llm.batch import DryRunEstimate, engines_for, gather_all, items_under_way, ordered_map
from prefdata.llm.engine import ChatRequest, ChatResult, Engine, LLMConfig, RequestRejected
from prefdata.llm.templating import fill, load_templates, template_sha256
from prefdata.pipeline.progress import progress
from prefdata.pipeline.records import RecordLoop, Reject

SOURCE = "generate"  # one source for every answer: `split` pairs scored replies of the same source and group
SAMPLING_TEMPERATURE = 1.0  # what `LLMConfig.temperature` None means here: sample from the policy as it is
SPLIT_DIRECTORY_PROMPTS = "ppo_train"  # the prompts of a `prefdata split` directory, unless --splits says otherwise


@dataclass(frozen=True)
class Policy:
    """One model to sample from: its name as the server knows it, and the server (None: ``--base-url``)."""

    name: str
    base_url: str | None = None

    @staticmethod
    def parse(spec: str) -> Policy:
        """``NAME`` or ``NAME=URL`` (``URL`` = ``http(s)://…``): a local SFT server can stand next to a hosted model."""
        name, sep, url = spec.rpartition("=")
        if sep and url.startswith(("http://", "https://")) and name:
            return Policy(name, url)
        if not spec.strip():
            raise PrefdataError("a policy needs a model name", field="--model")
        return Policy(spec)


@dataclass(frozen=True)
class PromptItem:
    """One distinct prompt to answer: where it was read (split, row index) and the row it came from."""

    split: str
    index: int
    prompt: list[dict[str, str]]
    group: str
    row_id: str
    source: str


@dataclass(frozen=True)
class Answer:
    """One request's outcome: the text (or the server's refusal) and how it was asked."""

    policy: Policy
    answer_index: int
    request: ChatRequest
    result: ChatResult | RequestRejected


def parse_policies(specs: Sequence[str]) -> list[Policy]:
    policies = [Policy.parse(spec) for spec in specs]
    if not policies:
        raise PrefdataError("give at least one --model", field="--model")
    names = [p.name for p in policies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # the cache and the provenance know a policy by its name
        raise PrefdataError(f"policy name(s) given twice: {', '.join(twice)}; serve them under distinct names",
                            field="--model")
    return policies


def read_prompts(directory: str | os.PathLike, splits: Sequence[str] | None = None) -> list[PromptItem]:
    """The distinct prompts of ``splits`` (default: ``ppo_train`` of a split directory, else every split), each
    with the group and id of the first row that has it, in stored order."""
    from prefdata.storage.dataset import iter_rows, read_manifest

    available = list(read_manifest(directory).get("splits", {}))
    if splits is None:
        splits = [SPLIT_DIRECTORY_PROMPTS] if SPLIT_DIRECTORY_PROMPTS in available else available
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise PrefdataError(f"has no split(s) {', '.join(unknown)} (it has {', '.join(available) or 'none'})",
                            file=str(directory), field="--splits")
    seen: set[str] = set()
    items: list[PromptItem] = []
    for split in splits:
        for index, (_, row) in enumerate(iter_rows(directory, split)):
            key = canonical_json(row["prompt"])
            if key in seen:
                continue
            seen.add(key)
            items.append(PromptItem(split, index, row["prompt"], row["group"], row["id"], row["source"]))
    return items


def answer_problem(result: ChatResult, max_tokens: int) -> tuple[str, str] | None:
    """Why an answer cannot be ranked, as ``(reason, message)``, or None."""
    if not result.text.strip():
        return "empty_reply", "chosen: the model returned an empty answer"
    if result.finish_reason == "length":
        return "truncated", f"chosen: the answer was cut off at --max-tokens {max_tokens}"
    if is_refusal(result.text):
        return "refusal", "chosen: the model refused to answer"
    return None


def generate(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    *,
    models: Sequence[str],
    config: LLMConfig,
    n_completions: int = 4,
    splits: Sequence[str] | None = None,
    template: str | None = None,
    templates: str | os.PathLike | None = None,
    top_p: float | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Sample ``n_completions`` answers per prompt of ``directory`` from each of ``models`` into ``out``; return the
    manifest (or, with ``config.dry_run``, the request and cost estimate).

    ``models``: ``NAME`` or ``NAME=URL``; ``config`` holds the engine settings shared by all policies (``--base-url``
    is the server of a policy without its own URL; concurrency and rate limits apply per server, --max-cost to the run).
    ``template``: a key of the templates file with ``{user_input}`` to wrap the conversation in; None sends the prompt's
    messages as they are (what a chat policy such as a served SFT checkpoint expects).
    """
    from prefdata.storage.dataset import DatasetWriter

    if n_completions < 1:
        raise PrefdataError("--n-completions must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise PrefdataError("--top-p must be in (0, 1]")
    config = config.with_default_temperature(SAMPLING_TEMPERATURE)
    job = _Job(parse_policies(models), config, n_completions, _template(template, templates), top_p, quiet)
    prompts = read_prompts(directory, splits)
    if config.dry_run:
        return asyncio.run(job.dry_run(prompts))
    with DatasetWriter(out, command="generate", options=options or {}, schema_id=PREFERENCE_SCHEMA_ID,
                       overwrite=overwrite) as writer:
        for split in dict.fromkeys(item.split for item in prompts):
            writer.split(split)
        asyncio.run(job.run(directory, prompts, writer))
    return writer.manifest


def _template(name: str | None, path: str | os.PathLike | None) -> tuple[str, str] | None:
    if name is None:
        return None
    table = load_templates(path)
    if name not in table:
        raise PrefdataError(f"no template {name!r} in the templates file", field="--template")
    fill(table[name], user_input="x")  # fails now, before any request, if it needs more than {user_input}
    return name, table[name]


class _Job:
    def __init__(self, policies: list[Policy], config: LLMConfig, k: int, template: tuple[str, str] | None,
                 top_p: float | None, quiet: bool) -> None:
        self.policies, self.config, self.k, self.template, self.top_p, self.quiet = (
            policies, config, k, template, top_p, quiet)

    def requests(self, item: PromptItem, policy: Policy) -> list[ChatRequest]:
        """The K requests of ``policy`` for ``item``: each its own seed (consecutive from a base derived from the run's
        seed, the policy and the prompt, so the K seeds of one prompt are distinct and stable), the same messages."""
        messages = item.prompt
        if self.template is not None:
            messages = [{"role": "user", "content": fill(self.template[1], user_input=conversation_text(item.prompt))}]
        base = derive_seed(self.config.seed, "generate", policy.name, canonical_json(item.prompt))
        return [ChatRequest.of(messages, self.config, seed=(base + i) % 2**31, top_p=self.top_p) for i in range(self.k)]

    def configs(self) -> dict[str, LLMConfig]:
        """The engine settings of each policy: its own model name and server, the run's other settings."""
        return {p.name: replace(self.config, model=p.name, base_url=p.base_url or self.config.base_url)
                for p in self.policies}

    async def run(self, directory: str | os.PathLike, prompts: list[PromptItem], writer) -> None:
        loop = RecordLoop(writer)
        hosts = {name: config.base_url_host() for name, config in self.configs().items()}
        per_prompt = len(self.policies) * self.k
        async with engines_for(self.configs()) as engines:
            async def answer_all(item: PromptItem) -> tuple[PromptItem, list[Answer]]:
                asks = [(p, i, r) for p in self.policies for i, r in enumerate(self.requests(item, p))]
                results = await gather_all(*(_ask(engines[p.name], r) for p, i, r in asks))
                return item, [Answer(p, i, r, res) for (p, i, r), res in zip(asks, results)]

            window = items_under_way(self.config.concurrency * len(self.policies), per_prompt)
            bar = progress(None, desc="generate", total=len(prompts) * per_prompt, quiet=self.quiet, unit="answer")
            async for item, answers in ordered_map(prompts, answer_all, window=window):
                self._write(loop, f"{directory}/{item.split}", item, answers, hosts)
                bar.update(len(answers))
            bar.close()
            first = next(iter(engines.values()))
            writer.extra["llm"] = {**first.summary(), "model": list(engines), "base_url_host": sorted(set(hosts.values()))}
        loop.finish()
        writer.extra["generate"] = {
            "prompts": len(prompts), "n_completions": self.k, "answers_requested": len(prompts) * per_prompt,
            "policies": [{"model": name, "base_url_host": host} for name, host in hosts.items()],
            "sampling": self.sampling(), **self.template_meta(),
        }

    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.config.temperature, "top_p": self.top_p, "max_tokens": self.config.max_tokens,
                "seed": self.config.seed}

    def template_meta(self) -> dict[str, Any]:
        if self.template is None:
            return {"template": None, "template_sha256": None}
        return {"template": self.template[0], "template_sha256": template_sha256(self.template[1])}

    def _write(self, loop: RecordLoop, file: str, item: PromptItem, answers: list[Answer],
               hosts: dict[str, str]) -> None:
        """Each answer of one prompt: a row, or quarantined (the first of identical texts is the one kept)."""
        kept: dict[str, tuple[str, int, str]] = {}  # text -> (policy, answer index, row id)
        for answer in answers:
            record = {"prompt": item.prompt, "model": answer.policy.name, "answer_index": answer.answer_index,
                      "seed": answer.request.seed}
            result = answer.result
            if isinstance(result, RequestRejected):
                loop.quarantine(Reject("llm_rejected", f"the server refused the request (HTTP {result.status}): "
                                       f"{result.message}", record, file=file, index=item.index))
                continue
            record["answer"] = result.text
            problem = answer_problem(result, self.config.max_tokens)
            text = result.text.strip()
            if problem is None and text in kept:
                model, index, row_id = kept[text]
                problem = ("duplicate_sibling", f"chosen: the same text as answer {index} of {model} to this prompt "
                           f"(row {row_id})")
            if problem is not None:
                loop.quarantine(Reject(*problem, record, file=file, index=item.index))
                continue
            meta = {"generate": {
                "model": answer.policy.name, "base_url_host": hosts[answer.policy.name],
                "seed": answer.request.seed, "sampling": self.sampling() | {"seed": answer.request.seed},
                **self.template_meta(), "answer_index": answer.answer_index, "n_completions": self.k,
                "finish_reason": result.finish_reason, "prompt_row": item.row_id, "prompt_source": item.source,
            }}
            try:
                row = make_row(item.prompt, text, source=SOURCE, group=item.group, meta=meta)
            except RowError as e:
                loop.quarantine(Reject.of(e, record, file=file, index=item.index))
                continue
            kept[text] = (answer.policy.name, answer.answer_index, row["id"])
            loop.row(row, item.split, file)

    async def dry_run(self, prompts: list[PromptItem]) -> dict[str, Any]:
        estimate = DryRunEstimate()
        async with engines_for(self.configs()) as engines:
            for item in prompts:
                for policy in self.policies:
                    for request in self.requests(item, policy):
                        estimate.add(engines[policy.name], request)
            estimate.notes.append(f"{len(prompts)} distinct prompt(s) x {len(self.policies)} policy(ies) x "
                                  f"{self.k} answer(s)")
            return {**estimate.as_dict(next(iter(engines.values()))), "model": list(engines),
                    "base_url_host": sorted({e.config.base_url_host() for e in engines.values()})}


async def _ask(engine: Engine, request: ChatRequest) -> ChatResult | RequestRejected:
    try:
        return await engine.complete(request)
    except RequestRejected as e:
        return e

