"""The LLM verbs `prefdata synthesize`, `score`, `generate` and `rank`: thin click layers over `prefdata.jobs.*`.

The engine options are generated from `LLMConfig`, the job options from the job functions' signatures, so every
default is the library's. The API key is read from ``OPENAI_API_KEY`` by the engine; there is deliberately no option
for it (options are recorded in the manifest and show up in shell history). For `generate` and `rank`, ``--model``
is repeatable (several policies; several judges for a panel) and may name its own server as ``NAME=URL``; the manifest
records ``NAME=HOST``. The reward-model ranker is loaded from ``trainers`` only when asked for, so these verbs never
import torch otherwise.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from prefdata.cli.options import (
    Names,
    Numbers,
    config_options,
    from_signature,
    overwrite_option,
    pop_config,
    quiet_option,
)
from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import TEMPLATES
from prefdata.jobs import generate, rank, score, synthesize
from prefdata.llm.engine import LLMConfig

SCORE_RANGE_HELP = "Range a pointwise judge score must fall in, e.g. 0,10; anything else counts as unparseable."
POSITIVE = click.FloatRange(min=0, min_open=True)

# Type and help of each `LLMConfig` field; the default is the field's own.
LLM_OPTIONS: dict[str, dict[str, Any]] = {
    "model": {"help": "Model name as the server knows it."},
    "base_url": {"help": "OpenAI-compatible endpoint [default: $OPENAI_BASE_URL, else https://api.openai.com/v1]. "
                         "vLLM: http://HOST:8000/v1; Ollama: http://localhost:11434/v1."},
    "concurrency": {"type": click.IntRange(min=1), "help": "Requests in flight at once."},
    "rpm": {"type": POSITIVE, "help": "Requests-per-minute limit (requests are spaced evenly)."},
    "tpm": {"type": POSITIVE, "help": "Tokens-per-minute limit (prompt estimate + --max-tokens reserved per request, "
                                      "the unused part given back when the reply arrives)."},
    "timeout": {"type": POSITIVE, "help": "Seconds to wait for one reply before retrying."},
    "max_retries": {"type": click.IntRange(min=0), "help": "Retries per request (429, 5xx, timeouts, malformed "
                    "replies; Retry-After up to 2 minutes is honoured) before the run stops."},
    "max_retry_time": {"type": POSITIVE, "help": "Total seconds one request may take, its retries included."},
    "cache": {"help": "SQLite cache of replies [default: $PREFDATA_HOME/llm.sqlite, PREFDATA_HOME defaulting to "
                      "~/.cache/prefdata]; 'none' disables it."},
    "price_in": {"type": click.FloatRange(min=0), "help": "Price per 1M prompt tokens."},
    "price_out": {"type": click.FloatRange(min=0), "help": "Price per 1M completion tokens."},
    "max_cost": {"type": click.FloatRange(min=0),
                 "help": "Hard stop: no request is sent that could take the spend past this."},
    "temperature": {"type": click.FloatRange(min=0), "help": f"Sampling temperature [default: "
                    f"{synthesize.GENERATION_TEMPERATURE:g} to synthesize, {score.JUDGE_TEMPERATURE:g} to score]."},
    "max_tokens": {"type": click.IntRange(min=1), "help": "Completion tokens per request."},
    "seed": {"type": int, "help": "Seed for sampling and per-request seeds."},
    "dry_run": {"help": "Print the request count and token/cost estimate; send nothing."},
}


def parse_score_range(text: str) -> tuple[float, float]:
    """``0,10`` -> ``(0.0, 10.0)``: two numbers, the first below the second."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise PrefdataError(f"expected LOW,HIGH such as 0,10, not {text!r}", field="--score-range") from None
    if not (math.isfinite(low) and math.isfinite(high)):  # nan compares false to everything; inf is no range
        raise PrefdataError(f"LOW and HIGH must be finite numbers, not {text!r}", field="--score-range")
    if not low < high:
        raise PrefdataError(f"LOW must be below HIGH in {text!r}", field="--score-range")
    return low, high


def _job_options(job) -> list:
    """The options both verbs share, with the job's own defaults."""
    return [
        from_signature(job, "score_range", type=Numbers(parse_score_range), help=SCORE_RANGE_HELP),
        from_signature(job, "templates", type=click.Path(dir_okay=False),
                       help="templates.json to use instead of the bundled one."),
        config_options(LLMConfig, LLM_OPTIONS),
        quiet_option,
        overwrite_option,
    ]


def _apply(options: list):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _run(job, source: dict[str, str], out: str, kwargs: dict[str, Any]) -> None:
    """Build the engine config from its options, record all options, run ``job`` and print its summary."""
    config = pop_config(LLMConfig, kwargs)
    options = _recorded({**source, "out": out, **kwargs}, config)
    _finish(job(*source.values(), out, config=config, options=options, **kwargs), out)


def _finish(result: dict, out: str) -> None:
    from prefdata.pipeline.progress import summary_line

    if result.get("dry_run"):
        click.echo(json.dumps(result, indent=2))
        return
    line = summary_line(result, out)
    llm = result.get("llm")
    if llm is not None:  # `rank --by reward-model` asks no LLM
        line += (f"; {llm.get('requests', 0):,} requests, {llm.get('cached_hits', 0):,} cached, "
                 f"{llm.get('tokens_in', 0):,}/{llm.get('tokens_out', 0):,} tokens in/out, "
                 f"cost {llm.get('estimated_cost', 0):.4f}")
    click.echo(line)


def _recorded(kwargs: dict, config: LLMConfig) -> dict:
    """Options as written to the manifest: the base URL is reduced to its host (it may carry credentials)."""
    recorded = {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()}
    recorded.update({k: v for k, v in vars(config).items() if k != "base_url"})
    recorded["base_url_host"] = config.base_url_host()
    if isinstance(recorded.get("score_range"), tuple):
        recorded["score_range"] = list(recorded["score_range"])
    return recorded


@click.command("synthesize")
@click.option("--kind", type=click.Choice(synthesize.KINDS), required=True,
              help="actor: prompts + completions; reward: + judge scores; rlhf: prompts only.")
@click.option("--seeds", type=click.Path(dir_okay=False), required=True,
              help="Seed examples in any format `prefdata import` reads.")
@from_signature(synthesize.synthesize, "seeds_format", help="Format of --seeds, as for `import --format`.")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Rows to produce.")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@from_signature(synthesize.synthesize, "examples_per_request", type=click.IntRange(min=1))
@from_signature(synthesize.synthesize, "prompts_per_request", type=click.IntRange(min=1))
@from_signature(synthesize.synthesize, "similarity", type=click.FloatRange(0, 1, min_open=True),
                help="ROUGE-L at or above which a new prompt counts as a near-duplicate.")
@from_signature(synthesize.synthesize, "min_words", type=click.IntRange(min=0))
@from_signature(synthesize.synthesize, "max_words", type=click.IntRange(min=1))
@_apply(_job_options(synthesize.synthesize))
def synthesize_command(seeds: str, out: str, **kwargs) -> None:
    """Grow new actor / reward / rlhf data from seed examples with any OpenAI-compatible model."""
    _run(synthesize.synthesize, {"seeds": seeds}, out, kwargs)


@click.command("score")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@from_signature(score.score, "pairwise", help="Judge pairs in both orders (A/B) instead of scoring each reply.")
@from_signature(score.score, "relabel",
                help="With --pairwise: swap chosen/rejected where both orders disagree with the label.")
@_apply(_job_options(score.score))
def score_command(directory: str, out: str, **kwargs) -> None:
    """Score replies with an LLM judge: chosen_score/rejected_score, or pairwise verdicts with --pairwise."""
    _run(score.score, {"directory": directory}, out, kwargs)


MODEL_HELP = "Model name as the server knows it; NAME=URL gives it its own server (repeatable)."


def _engine_options(*, temperature_default: str, models_required: bool):
    specs = {**LLM_OPTIONS, "model": {"multiple": True, "required": models_required, "help": MODEL_HELP},
             "temperature": {**LLM_OPTIONS["temperature"], "help": f"Sampling temperature [default: "
                             f"{temperature_default}]."}}
    return config_options(LLMConfig, specs)


def _config(kwargs: dict[str, Any]) -> tuple[LLMConfig, list[str]]:
    """The engine settings and the ``--model`` values (the config holds the first until a job gives each its own)."""
    models = list(kwargs["model"])
    kwargs["model"] = models[0] if models else ""
    return pop_config(LLMConfig, kwargs), models


def _recorded_models(models: list[str]) -> list[str]:
    """``--model`` values as the manifest records them: ``NAME=URL`` becomes ``NAME=HOST`` (a URL may carry secrets)."""
    policies = [generate.Policy.parse(spec) for spec in models]
    return [p.name if p.base_url is None else f"{p.name}={LLMConfig(p.name, p.base_url).base_url_host()}"
            for p in policies]


@click.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@from_signature(generate.generate, "n_completions", type=click.IntRange(min=1), help="Answers per prompt and policy.")
@from_signature(generate.generate, "splits", type=Names(),
                help="Splits whose prompts to answer [default: ppo_train of a split directory, else every split].")
@from_signature(generate.generate, "top_p", type=click.FloatRange(0, 1, min_open=True), help="Nucleus sampling.")
@from_signature(generate.generate, "template", help="A template with {user_input} to wrap the conversation in "
                "[default: none, the prompt's messages are sent as they are].")
@from_signature(generate.generate, "templates", type=click.Path(dir_okay=False), help="templates.json to read it from.")
@_engine_options(temperature_default=f"{generate.SAMPLING_TEMPERATURE:g}", models_required=True)
@quiet_option
@overwrite_option
def generate_command(directory: str, out: str, **kwargs: Any) -> None:
    """Sample K answers per prompt from one or several OpenAI-compatible policies (quarantining empty, truncated,
    refused and duplicate answers)."""
    config, models = _config(kwargs)
    options = _recorded({"directory": directory, "out": out, **kwargs}, config) | {"model": _recorded_models(models)}
    _finish(generate.generate(directory, out, models=models, config=config, options=options, **kwargs), out)


@click.command("rank")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--by", type=click.Choice(rank.RANKERS), required=True,
              help="judge: one judge rates each aspect; pairwise: answers compared in both orders, by one judge or "
                   "by the majority of several; panel: several judges (--model A --model B) rate each aspect; "
                   "reward-model: a `prefdata train reward` checkpoint.")
@from_signature(rank.rank, "aspects", type=Names(), help="Aspects to rate (aspect_<name> templates) [default: all].")
@from_signature(rank.rank, "combine", type=click.Choice(("mean", "min")), help="How aspect ratings become one score.")
@from_signature(rank.rank, "score_range", type=Numbers(parse_score_range),
                help="Range an aspect rating must fall in; anything else counts as unparseable.")
@from_signature(rank.rank, "templates", type=click.Path(dir_okay=False), help="templates.json to use.")
@click.option("--reward-model", type=click.Path(file_okay=False), help="With --by reward-model: the checkpoint dir.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="With --by reward-model: answers per forward pass.")
@click.option("--render-template", type=click.Choice(TEMPLATES), default="dschat", show_default=True,
              help="With --by reward-model: how a chat becomes text (use the reward model's training --template).")
@click.option("--max-seq-len", type=click.IntRange(min=2), default=512, show_default=True,
              help="With --by reward-model: tokens per answer (longer ones keep their end).")
@_engine_options(temperature_default="0", models_required=False)
@quiet_option
@overwrite_option
def rank_command(directory: str, out: str, by: str, reward_model: str | None, batch_size: int, render_template: str,
                 max_seq_len: int, **kwargs: Any) -> None:
    """Score and rank the answers of each prompt (a `prefdata generate` output) with a judge, a panel or a reward
    model; `prefdata split --pairs` then makes the pairs."""
    config, models = _config(kwargs)
    options = {**_recorded({"directory": directory, "out": out, "by": by, **kwargs}, config),
               "model": _recorded_models(models),
               "reward_model": reward_model, "batch_size": batch_size, "render_template": render_template,
               "max_seq_len": max_seq_len}
    scorer = None
    if by == "reward-model":
        if reward_model is None:
            raise PrefdataError("--by reward-model needs --reward-model DIR", field="--reward-model")
        scorer = _reward_scorer(reward_model, batch_size=batch_size, template=render_template, max_seq_len=max_seq_len,
                                quiet=kwargs["quiet"])
    judge_config = replace(config, model=models[0]) if models else None
    _finish(rank.rank(directory, out, by=by, config=judge_config, judges=models, scorer=scorer, options=options,
                      **kwargs), out)


def _reward_scorer(path: str, **settings: Any):
    """The reward-model scorer from ``trainers`` (imported by name, like `prefdata train`: it needs the train extra)."""
    try:
        module = importlib.import_module("trainers.components.reward_scoring")
    except ImportError as e:
        raise PrefdataError(f"--by reward-model needs the train extra (pip install 'prefdata[train]'): {e}") from None
    return module.RewardModelScorer(path, **settings)
