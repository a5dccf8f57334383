"""`prefdata synthesize` and `prefdata score`: thin click layers over `prefdata.jobs.synthesize` and `prefdata.jobs.score`.

The API key is read from ``OPENAI_API_KEY`` by the engine; there is deliberately no option for it (options are
recorded in the manifest and show up in shell history).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from prefdata.cli.options import overwrite_option, quiet_option

SCORE_RANGE_HELP = "Range a pointwise judge score must fall in, e.g. 0,10; anything else counts as unparseable."


def _score_range(_ctx, _param, value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("expected LOW,HIGH such as 0,10") from None
    if low >= high:
        raise click.BadParameter("LOW must be below HIGH")
    return low, high


def llm_options(default_temperature: float) -> Callable:
    """The engine options shared by both verbs."""
    options = [
        click.option("--model", required=True, help="Model name as the server knows it."),
        click.option("--base-url", default=None, help="OpenAI-compatible endpoint [default: $OPENAI_BASE_URL, "
                     "else https://api.openai.com/v1]. vLLM: http://HOST:8000/v1; Ollama: http://localhost:11434/v1."),
        click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Requests in flight at once."),
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Requests-per-minute limit (requests are spaced evenly)."),
        click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Tokens-per-minute limit (prompt estimate + --max-tokens reserved per request)."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
                     help="Seconds to wait for one reply before retrying."),
        click.option("--max-retries", type=click.IntRange(min=0), default=6, show_default=True,
                     help="Retries per request (429, 5xx, timeouts, malformed replies) before the run stops."),
        click.option("--max-retry-time", type=click.FloatRange(min=0, min_open=True), default=600.0,
                     show_default=True, help="Total seconds one request may spend in retries."),
        click.option("--cache", "cache", default=None,
                     help="SQLite cache of replies [default: $PREFDATA_CACHE, else ~/.cache/prefdata/llm.sqlite]; "
                          "'none' disables it."),
        click.option("--price-in", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Price per 1M prompt tokens."),
        click.option("--price-out", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Price per 1M completion tokens."),
        click.option("--max-cost", type=click.FloatRange(min=0), default=None,
                     help="Hard stop: no request is sent that could take the spend past this."),
        click.option("--dry-run", is_flag=True, help="Print the request count and token/cost estimate; send nothing."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling and per-request seeds."),
        click.option("--temperature", type=click.FloatRange(min=0), default=default_temperature, show_default=True),
        click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
                     help="Completion tokens per request."),
        click.option("--templates", "templates", type=click.Path(dir_okay=False), default=None,
                     help="templates.json to use instead of the bundled one."),
        quiet_option,
        overwrite_option,
    ]

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _config(kwargs: dict):
    from prefdata.llm.engine import LLMConfig

    return LLMConfig(
        model=kwargs["model"], base_url=kwargs["base_url"], concurrency=kwargs["concurrency"], rpm=kwargs["rpm"],
        tpm=kwargs["tpm"], timeout=kwargs["timeout"], max_retries=kwargs["max_retries"],
        max_retry_time=kwargs["max_retry_time"], cache=kwargs["cache"], price_in=kwargs["price_in"],
        price_out=kwargs["price_out"], max_cost=kwargs["max_cost"], temperature=kwargs["temperature"],
        max_tokens=kwargs["max_tokens"], seed=kwargs["seed"], dry_run=kwargs["dry_run"],
    )


def _finish(result: dict, out: str, quiet: bool) -> None:
    from prefdata.pipeline.progress import summary_line

    if result.get("dry_run"):
        click.echo(json.dumps(result, indent=2))
        return
    llm = result.get("llm", {})
    line = summary_line(result, out)
    line += (f"; {llm.get('requests', 0):,} requests, {llm.get('cached_hits', 0):,} cached, "
             f"{llm.get('tokens_in', 0):,}/{llm.get('tokens_out', 0):,} tokens in/out, "
             f"cost {llm.get('estimated_cost', 0):.4f}")
    click.echo(line)


@click.command("synthesize")
@click.option("--kind", type=click.Choice(["actor", "reward", "rlhf"]), required=True,
              help="actor: prompts + completions; reward: + judge scores; rlhf: prompts only.")
@click.option("--seeds", type=click.Path(dir_okay=False), required=True,
              help="Seed examples in any format `prefdata import` reads.")
@click.option("--seeds-format", default="auto", show_default=True, help="Format of --seeds, as for `import --format`.")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Rows to produce.")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--examples-per-request", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--prompts-per-request", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--similarity", type=click.FloatRange(0, 1, min_open=True), default=0.7, show_default=True,
              help="ROUGE-L at or above which a new prompt counts as a near-duplicate.")
@click.option("--min-words", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--max-words", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--score-range", default="0,10", show_default=True, callback=_score_range, help=SCORE_RANGE_HELP)
@llm_options(default_temperature=0.7)
def synthesize_command(**kwargs) -> None:
    """Grow new actor / reward / rlhf data from seed examples with any OpenAI-compatible model."""
    from prefdata.jobs.synthesize import synthesize

    result = synthesize(
        kwargs["seeds"], kwargs["out"], kind=kwargs["kind"], n=kwargs["n"], config=_config(kwargs),
        templates=kwargs["templates"], seeds_format=kwargs["seeds_format"],
        examples_per_request=kwargs["examples_per_request"], prompts_per_request=kwargs["prompts_per_request"],
        similarity=kwargs["similarity"], min_words=kwargs["min_words"], max_words=kwargs["max_words"],
        score_range=kwargs["score_range"], overwrite=kwargs["overwrite"], quiet=kwargs["quiet"],
        options=_recorded(kwargs),
    )
    _finish(result, kwargs["out"], kwargs["quiet"])


@click.command("score")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--pairwise", is_flag=True, help="Judge pairs in both orders (A/B) instead of scoring each reply.")
@click.option("--relabel", is_flag=True, help="With --pairwise: swap chosen/rejected where both orders disagree "
              "with the label.")
@click.option("--score-range", default="0,10", show_default=True, callback=_score_range, help=SCORE_RANGE_HELP)
@llm_options(default_temperature=0.0)
def score_command(directory: str, **kwargs) -> None:
    """Score replies with an LLM judge: chosen_score/rejected_score, or pairwise verdicts with --pairwise."""
    from prefdata.jobs.score import score

    result = score(
        directory, kwargs["out"], config=_config(kwargs), templates=kwargs["templates"], pairwise=kwargs["pairwise"],
        relabel=kwargs["relabel"], score_range=kwargs["score_range"], overwrite=kwargs["overwrite"],
        quiet=kwargs["quiet"], options={"directory": directory, **_recorded(kwargs)},
    )
    _finish(result, kwargs["out"], kwargs["quiet"])


def _recorded(kwargs: dict) -> dict:
    """Options as written to the manifest: the base URL is reduced to its host (it may carry credentials)."""
    from prefdata.llm.engine import LLMConfig

    recorded = {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items() if k != "base_url"}
    recorded["base_url_host"] = LLMConfig(model="", base_url=kwargs["base_url"]).base_url_host()
    if isinstance(recorded.get("score_range"), tuple):
        recorded["score_range"] = list(recorded["score_range"])
    return recorded
