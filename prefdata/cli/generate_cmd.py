"""`prefdata generate` and `prefdata rank`: thin click layers over `prefdata.jobs.generate` and `prefdata.jobs.rank`.

Engine options come from `LLMConfig` as for `synthesize`/`score` (same help, same defaults); ``--model`` is repeatable
here (several policies; several judges for a panel) and may name its own server as ``NAME=URL``. The reward-model
ranker is loaded from ``trainers`` only when asked for, so these verbs never import torch otherwise.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import click

from prefdata.cli.llm_cmd import LLM_OPTIONS, _finish, _recorded, parse_score_range
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
from prefdata.jobs import generate, rank
from prefdata.llm.engine import LLMConfig

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
              help="judge: one judge rates each aspect; pairwise: one judge compares answers in both orders; panel: "
                   "several judges (--model A --model B); reward-model: a `prefdata train reward` checkpoint.")
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
        scorer = _reward_scorer(reward_model, batch_size=batch_size, template=render_template, max_seq_len=max_seq_len)
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
