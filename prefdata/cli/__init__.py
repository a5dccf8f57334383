"""The `prefdata` command. Each verb lives in `prefdata.cli.options.<module>` and is a thin layer over a library function.

Verbs are imported only when used, so `prefdata --help` stays fast and the data verbs never import torch. A user's
mistake (`PrefdataError`) is printed as one line with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from prefdata.contract.errors import PrefdataError
from prefdata.contract.version import __version__

# verb: (module, attribute, one-line help shown by `prefdata --help` without importing the module)
COMMANDS = {
    "download": ("prefdata.cli.download_cmd", "download_command", "Fetch HH-RLHF, SHP or a hub dataset."),
    "import": ("prefdata.cli.import_cmd", "import_command", "Normalise JSON/JSONL/CSV files into a dataset."),
    "validate": ("prefdata.cli.validate_cmd", "validate_command", "Check files or a dataset directory."),
    "synthesize": ("prefdata.cli.llm_cmd", "synthesize_command", "Generate actor/reward/rlhf data with an LLM."),
    "score": ("prefdata.cli.llm_cmd", "score_command", "Score or judge replies with an LLM."),
    "generate": ("prefdata.cli.llm_cmd", "generate_command", "Sample K answers per prompt from LLM policies."),
    "rank": ("prefdata.cli.llm_cmd", "rank_command", "Rank answers with a judge, a panel or a reward model."),
    "split": ("prefdata.cli.split_cmd", "split_command", "Split into SFT / RM / PPO phases without leakage."),
    "export": ("prefdata.cli.export_cmd", "export_command", "Write TRL, DeepSpeed-Chat, ChatLLaMA, JSONL, Parquet."),
    "stats": ("prefdata.cli.stats_cmd", "stats_command", "Write the data card with counts and histograms."),
    "train": ("prefdata.cli.train_cmd", "train_command", "Run the SFT, reward-model or PPO trainer."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prefdata")
def cli() -> None:
    """Preference data for RLHF: import, validate, synthesize, score, split, export; then train SFT, RM and PPO."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="prefdata", standalone_mode=False)
    except PrefdataError as e:
        click.echo(f"prefdata: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("prefdata: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("prefdata: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)

