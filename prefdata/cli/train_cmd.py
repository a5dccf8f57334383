"""`prefdata train sft|reward|ppo|dpo|kto|tokenizer`: the trainer recipes, run in this process (one rank; use
`deepspeed -m trainers.recipes.<phase>` for several). The options are the recipes' own, generated from their config
dataclasses, so the command line and `python -m trainers.recipes.<phase>` always agree.
"""

from __future__ import annotations

import click


class _LazyTrainGroup(click.Group):
    """Imports a recipe (and so torch and DeepSpeed) only when its subcommand runs or shows its help."""

    _NAMES = ("sft", "reward", "ppo", "dpo", "kto", "tokenizer")
    _RECIPES = {name: (f"trainers.recipes.{name}", f"{name}_command") for name in _NAMES}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self._RECIPES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self._RECIPES:
            return None
        import importlib

        module, attribute = self._RECIPES[name]
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError as e:
            raise click.ClickException(f"training needs the train extra (pip install 'prefdata[train]'): {e}") from None


@click.group("train", cls=_LazyTrainGroup)
def train_command() -> None:
    """Train phase 1 (sft), 2 (reward) or 3 (ppo) on a `prefdata split` directory with DeepSpeed, or learn from the
    preferences directly (dpo: DPO, IPO, SimPO; kto); `tokenizer` trains a BPE tokenizer on the data for runs with a
    model built from a config."""
